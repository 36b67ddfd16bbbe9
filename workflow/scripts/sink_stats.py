"""Rule `sink_stats`: stats.json of one model (sinkprune.sinks.compute_sink_stats)."""

from sinkprune.logs import log_to
from sinkprune.sinks import compute_sink_stats

log_to(snakemake.log[0])
compute_sink_stats(
    snakemake.input.scores,
    snakemake.output[0],
    model=snakemake.wildcards.model,
    kind=snakemake.params.kind,
)
