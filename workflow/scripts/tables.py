"""Snakemake wrapper: paper tables (Markdown, CSV, LaTeX) and claims.md from the eval JSONs
(sinkprune.report)."""

import logging

from sinkprune.logs import log_to
from sinkprune.report import build_tables

log_to(snakemake.log[0])
p = snakemake.params
files = build_tables(
    snakemake.input.evals,
    snakemake.output.tables,
    p.models,
    p.evaluation,
    p.pruning,
    published_csv=snakemake.input.published,
    official_csv=snakemake.input.official,
    calibration=p.calibration,
    diffusion=p.diffusion,
    claims_path=snakemake.output.claims,
)
logging.info("wrote %d table files", len(files))
