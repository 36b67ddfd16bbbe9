"""Rule `prune`: pruned HF checkpoint + prune_report.json (sinkprune.pruning.prune_checkpoint)."""

from pathlib import Path

from sinkprune.logs import log_to
from sinkprune.pruning import prune_checkpoint

log_to(snakemake.log.log)
inp = snakemake.input
prune_checkpoint(
    inp.model,
    inp.samples,
    Path(snakemake.output.report).parent,
    snakemake.wildcards.variant,
    scores_path=inp.get("scores"),
    norms_path=inp.get("norms"),
    threads=snakemake.threads,
    timing_path=snakemake.log.timing,
    **snakemake.params.settings,
)
