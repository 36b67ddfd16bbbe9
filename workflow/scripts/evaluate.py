"""Rules `evaluate` / `heldout` / `perplexity`: task JSONs, heldout.json and/or ppl.json of one
checkpoint."""

from sinkprune.evaluation.run import evaluate_checkpoint
from sinkprune.logs import log_to

log_to(snakemake.log[0])
evaluate_checkpoint(
    snakemake.input.checkpoint,
    list(snakemake.output.get("tasks", [])),
    snakemake.params.tasks,
    snakemake.output.get("heldout"),
    test_txt=snakemake.input.get("test"),
    task_files=snakemake.input.get("tasks"),
    ppl_output=snakemake.output.get("ppl"),
    ppl_text=snakemake.input.get("ppl_text"),
    ppl=snakemake.params.get("ppl"),
    threads=snakemake.threads,
    **snakemake.params.run,  # heldout (evaluate, heldout), seed, require_gpu
)
