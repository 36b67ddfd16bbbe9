"""Snakemake wrapper: score/CE vs sparsity curves and sink-aware deltas (sinkprune.report)."""

import logging

from sinkprune.report import build_figures

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
p = snakemake.params
files = build_figures(
    snakemake.input.evals,
    snakemake.output[0],
    p.models,
    p.evaluation,
    p.pruning,
    calibration=p.calibration,
    diffusion=p.diffusion,
)
logging.info("wrote %d figure files", len(files))
