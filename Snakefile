# sinkprune: Sink-Aware Pruning of Diffusion Language Models (arXiv 2602.17664), as a workflow.
# The DAG: corpus -> tokenizer -> models -> calibration -> attention mass -> sink scores/stats
#          -> pruned checkpoints -> lm-eval JSON -> tables, figures, report.
from snakemake.utils import min_version

from sinkprune.config_checks import check_config_files, exit_on_config_error

min_version("9.20")


# --configfile replaces the embedded default instead of being merged into it
if not workflow.overwrite_configfiles:
    # YAML errors with file:line:column (Snakemake's loader reports neither)
    exit_on_config_error(check_config_files, ["config/config.yaml"])

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
include: "workflow/rules/ablation.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),
