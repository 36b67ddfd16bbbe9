# sinkprune: Sink-Aware Pruning of Diffusion Language Models (arXiv 2602.17664), as a workflow.
# The DAG: corpus -> tokenizer -> models -> calibration -> attention mass -> sink scores/stats
#          -> pruned checkpoints -> lm-eval JSON -> tables, figures, report.
from snakemake.utils import min_version

min_version("9.20")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/corpus.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/calibration.smk"
include: "workflow/rules/attention.smk"
include: "workflow/rules/sinks.smk"
include: "workflow/rules/pruning.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    input:
        all_targets(),
    default_target: True
