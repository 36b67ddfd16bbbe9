"""Rule `train_model`: one embedded model in results/models/{model}/ (sinkprune.training)."""

import os

# Idle OpenMP threads spin briefly, then sleep (set before torch is imported; docs/decisions.md):
# the default long spin trained 8x slower on a busy machine, sleeping at once 1.4x slower on a
# quiet one. Left alone when the user sets OMP_WAIT_POLICY.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "3000")

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
