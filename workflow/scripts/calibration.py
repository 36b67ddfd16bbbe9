"""Rule `calibration`: samples.parquet (sinkprune.calibration.build_calibration)."""

from sinkprune.calibration import build_calibration
from sinkprune.logs import log_to

log_to(snakemake.log[0])
p = snakemake.params
build_calibration(
    snakemake.input.train,
    snakemake.input.model,
    snakemake.output[0],
    nsamples=p.nsamples,
    seqlen=p.seqlen,
    seed=p.seed,
)
