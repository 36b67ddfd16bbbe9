"""Rule `prune`: pruned HF checkpoint + prune_report.json (sinkprune.pruning.prune_checkpoint)."""

import logging
from pathlib import Path

from sinkprune.pruning import prune_checkpoint

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
inp = snakemake.input
prune_checkpoint(
    inp.model,
    inp.samples,
    Path(snakemake.output.report).parent,
    snakemake.wildcards.variant,
    scores_path=inp.get("scores"),
    threads=snakemake.threads,
    **snakemake.params.settings,
)
