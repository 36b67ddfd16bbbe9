"""Rule `sink_masks`: scores.parquet from mass.parquet (sinkprune.sinks.compute_sink_scores)."""

import logging

from sinkprune.sinks import compute_sink_scores

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
p = snakemake.params
compute_sink_scores(
    snakemake.input.mass,
    snakemake.output[0],
    rule=p.rule,
    k=p.k,
    alpha=p.alpha,
    binary_eps=p.binary_eps,
)
