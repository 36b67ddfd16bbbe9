"""Rule `evaluate`: every task + heldout.json for one checkpoint (sinkprune.evaluation.run)."""

import logging

from sinkprune.evaluation.run import evaluate_checkpoint

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
run = snakemake.params.run
evaluate_checkpoint(
    snakemake.input.checkpoint,
    list(snakemake.output.tasks),
    snakemake.params.tasks,
    snakemake.output.heldout,
    run["heldout"],
    snakemake.input.test,
    task_files=snakemake.input.get("tasks"),
    seed=run["seed"],
    threads=snakemake.threads,
)
