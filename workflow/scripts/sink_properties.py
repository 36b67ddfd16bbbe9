"""Rule `sink_properties`: AR-vs-DLM table (sinkprune.sinks.write_sink_properties)."""

import logging

from sinkprune.sinks import write_sink_properties

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
write_sink_properties(list(snakemake.input.stats), snakemake.output.md, snakemake.output.csv)
