"""Rule `sink_stats`: stats.json of one model (sinkprune.sinks.compute_sink_stats)."""

import logging

from sinkprune.sinks import compute_sink_stats

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
compute_sink_stats(
    snakemake.input.scores,
    snakemake.output[0],
    model=snakemake.wildcards.model,
    kind=snakemake.params.kind,
)
