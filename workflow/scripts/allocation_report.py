"""Rule `allocation`: table and per-layer sparsity figure of the layer-wise allocations
(sinkprune.allocation_report.build_allocation_report)."""

from sinkprune.allocation_report import build_allocation_report
from sinkprune.logs import log_to

log_to(snakemake.log[0])
out = snakemake.output
build_allocation_report(
    snakemake.input.reports,
    snakemake.input.evals,
    snakemake.wildcards.model,
    snakemake.params.variants,
    snakemake.params.tasks,
    table_paths=(out.md, out.csv),
    figure_paths=(out.png, out.pdf),
)
