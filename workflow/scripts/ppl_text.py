"""Rule `ppl_text`: the release's perplexity text from the test split (sinkprune.evaluation.ppl)."""

from sinkprune.evaluation.ppl import write_ppl_text
from sinkprune.logs import log_to

log_to(snakemake.log[0])
s = snakemake.params.settings
write_ppl_text(s["corpus"], s["seed"], snakemake.input.test, s["rows"], snakemake.output[0])
