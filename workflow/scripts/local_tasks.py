"""Rule `local_tasks`: lm-eval YAML + JSONL tasks from the test split (sinkprune.evaluation.tasks)."""

import logging
from pathlib import Path

from sinkprune.evaluation.tasks import make_local_tasks

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
make_local_tasks(
    snakemake.input.test,
    Path(snakemake.input.tokenizer).parent,
    Path(snakemake.output.readme).parent,
    **snakemake.params.settings,
)
