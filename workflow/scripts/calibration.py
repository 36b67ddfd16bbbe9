"""Rule `calibration`: samples.parquet (sinkprune.calibration.build_calibration)."""

import logging

from sinkprune.calibration import build_calibration

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
p = snakemake.params
build_calibration(
    snakemake.input.train,
    snakemake.input.model,
    snakemake.output[0],
    nsamples=p.nsamples,
    seqlen=p.seqlen,
    seed=p.seed,
)
