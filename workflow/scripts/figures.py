"""Snakemake wrapper: score/CE vs sparsity curves and sink-aware deltas (sinkprune.report)."""

import logging

from sinkprune.logs import log_to
from sinkprune.report import build_figures

log_to(snakemake.log[0])
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
