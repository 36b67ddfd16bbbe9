"""Rule `sink_ladder`: the ablation ladders' table (sinkprune.ablation.build_ladder_table)."""

from sinkprune.ablation import build_ladder_table
from sinkprune.logs import log_to

log_to(snakemake.log[0])
p = snakemake.params
build_ladder_table(
    snakemake.input.evals,
    snakemake.output.md,
    snakemake.output.csv,
    p.models,
    p.ablation,
    p.tasks,
)
