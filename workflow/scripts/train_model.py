"""Rule `train_model`: one embedded model in results/models/{model}/ (sinkprune.training)."""

import logging
import os

from sinkprune.training import train_model

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
spec = snakemake.params.spec
train_model(
    snakemake.input.train,
    snakemake.input.valid,
    os.path.dirname(snakemake.input.tokenizer),
    snakemake.output[0],
    kind=spec["kind"],
    arch=spec["arch"],
    train=spec["train"],
    seed=snakemake.params.seed,
    threads=snakemake.threads,
)
