"""Rule `train_model`: one embedded model in results/models/{model}/ (sinkprune.training)."""

import os

from sinkprune.logs import log_to
from sinkprune.training import train_model

log_to(snakemake.log[0])
spec = snakemake.params.spec
train_model(
    snakemake.input.train,
    snakemake.input.valid,
    os.path.dirname(snakemake.input.tokenizer),
    snakemake.output[0],
    family=spec["family"],
    kind=spec["kind"],
    arch=spec["arch"],
    train=spec["train"],
    seed=snakemake.params.seed,
    threads=snakemake.threads,
)
