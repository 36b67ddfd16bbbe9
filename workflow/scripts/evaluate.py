"""Rules `evaluate` / `heldout`: task JSONs and/or heldout.json of one checkpoint."""

from sinkprune.evaluation.run import evaluate_checkpoint
from sinkprune.logs import log_to

log_to(snakemake.log[0])
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
