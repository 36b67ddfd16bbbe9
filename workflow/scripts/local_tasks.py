"""Rule `local_tasks`: lm-eval YAML + JSONL tasks from the test split (sinkprune.evaluation.tasks)."""

from pathlib import Path

from sinkprune.evaluation.tasks import make_local_tasks
from sinkprune.logs import log_to

log_to(snakemake.log[0])
make_local_tasks(
    snakemake.input.test,
    Path(snakemake.input.tokenizer).parent,
    Path(snakemake.output.readme).parent,
    **snakemake.params.settings,
)
