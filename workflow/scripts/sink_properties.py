"""Rule `sink_properties`: AR-vs-DLM table (sinkprune.sinks.write_sink_properties)."""

from sinkprune.logs import log_to
from sinkprune.sinks import write_sink_properties

log_to(snakemake.log[0])
write_sink_properties(list(snakemake.input.stats), snakemake.output.md, snakemake.output.csv)
