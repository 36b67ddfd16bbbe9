"""Rule `sink_masks`: scores.parquet from mass.parquet (sinkprune.sinks.compute_sink_scores)."""

from sinkprune.logs import log_to
from sinkprune.sinks import compute_sink_scores

log_to(snakemake.log[0])
p = snakemake.params
compute_sink_scores(
    snakemake.input.mass,
    snakemake.output[0],
    rule=p.rule,
    k=p.k,
    alpha=p.alpha,
    binary_eps=p.binary_eps,
)
