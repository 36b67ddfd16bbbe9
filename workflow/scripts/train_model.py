"""Rule `train_model`: one embedded model in results/models/{model}/ (sinkprune.training)."""

import os

# Idle OpenMP threads sleep instead of spinning (set before torch is imported): with 2 threads on
# a busy machine the default spin-wait trained 8x slower than 1 thread (docs/decisions.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from sinkprune.logs import log_to  # noqa: E402
from sinkprune.training import train_model  # noqa: E402

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
