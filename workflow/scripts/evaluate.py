"""Rules `evaluate` / `heldout`: task JSONs and/or heldout.json of one checkpoint."""

import logging

from sinkprune.evaluation.run import evaluate_checkpoint

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
evaluate_checkpoint(
    snakemake.input.checkpoint,
    list(snakemake.output.get("tasks", [])),
    snakemake.params.tasks,
    snakemake.output.get("heldout"),
    test_txt=snakemake.input.test,
    task_files=snakemake.input.get("tasks"),
    threads=snakemake.threads,
    **snakemake.params.run,  # heldout, seed, require_gpu
)
