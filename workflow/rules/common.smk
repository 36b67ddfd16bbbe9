# Config validation, input functions, target lists and resource functions.
# Plain Python helpers; the logic they call lives in src/sinkprune/ (config.py, resources.py).
import os
import re
from pathlib import Path

from sinkprune import resources as res
from sinkprune.config import VARIANT_PATTERN, parse_variant, validate_config, variants
from sinkprune.config import NORM_METHODS, SINK_METHODS, timestep_grid  # rule prune

# ablation.smk
from sinkprune.config import LADDERS, allocation_comparisons, ladder_variants
from sinkprune.config_checks import check_config_files, check_run_settings
from sinkprune.config_checks import exit_on_config_error

RESULTS = "results"
SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"

# The whole config is checked before any job: config files (duplicate keys, YAML errors with
# file:line:column), --cores/--jobs, the schema and the cross-key rules. A bad value stops
# Snakemake with one line naming the key, no traceback (config/README.md).
exit_on_config_error(check_config_files, workflow.configfiles)
exit_on_config_error(
    check_run_settings,
    workflow.resource_settings.cores,
    workflow.resource_settings.nodes,
)
exit_on_config_error(validate_config, config, SCHEMA)

MODELS = list(config["models"])
TRAINED = [m for m in MODELS if config["models"][m]["source"] == "train"]
HUB = [m for m in MODELS if config["models"][m]["source"] == "hub"]


wildcard_constraints:
    model="|".join(MODELS) if MODELS else "NONE",
    variant=VARIANT_PATTERN,


# ---------------------------------------------------------------- corpus ---
def corpus_input(wildcards):
    """The local text file of corpus.kind 'text_file' (so edits to it rerun the corpus)."""
    if config["corpus"]["kind"] == "text_file":
        return [config["corpus"]["path"]]
    return []


# ---------------------------------------------------------------- models ---
def model_cfg(wildcards):
    return config["models"][wildcards.model]


def model_dir(wildcards):
    """Directory of the dense base model: trained here or downloaded from the hub."""
    if config["models"][wildcards.model]["source"] == "train":
        return f"{RESULTS}/models/{wildcards.model}"
    return f"resources/models/{wildcards.model}"


def train_spec(wildcards):
    """What train_model needs of an embedded model: family, kind, arch, train (its params)."""
    m = config["models"][wildcards.model]
    return {
        "family": m["family"],
        "kind": m["kind"],
        "arch": m["arch"],
        "train": m.get("train", {}),
    }


def hub_spec(wildcards):
    """What download_model fetches for a hub model: hub_id, revision, family (no other keys, so
    editing e.g. n_params does not trigger a re-download)."""
    m = config["models"][wildcards.model]
    return {
        "hub_id": m["hub_id"],
        "revision": m.get("revision", "main"),
        "family": m["family"],
    }


def variant_names(model):
    return [v.name for v in variants(config, model)]


# --------------------------------------------------------------- pruning ---
#: the layout version of norms.safetensors (= sinkprune.sink_norms.NORMS_FORMAT, checked by
#: tests/test_sink_norms.py; not imported here, which would load torch at DAG-build time)
NORMS_FORMAT = "sinkprune.sink_norms/2"


# Input and params functions of rule `prune` (workflow/rules/pruning.smk, method.md §5).
def prune_inputs(wildcards):
    """Dense model and calibration windows; the sink norms for `sink` / `sink_sp` (no forward in
    the prune job) and the sink scores for `sink_sgpt`, so the other variants never wait for
    attention mass."""
    inputs = {
        "model": model_dir(wildcards),
        "samples": f"{RESULTS}/{wildcards.model}/calibration/samples.parquet",
    }
    v = parse_variant(wildcards.variant)
    if v.method in NORM_METHODS:
        inputs["norms"] = f"{RESULTS}/{wildcards.model}/sinks/norms.safetensors"
    elif v.method in SINK_METHODS and v.weighting != "none":  # ω̄ ≡ 1 needs no scores
        inputs["scores"] = f"{RESULTS}/{wildcards.model}/sinks/scores.parquet"
    return inputs


def prune_params(wildcards):
    """Settings prune_checkpoint needs for this variant, and only those (a changed SparseGPT
    blocksize does not rerun Wanda variants, a changed OWL lambda only the OWL variants; the noise
    settings of sink / sink_sp are params of rule sink_norms, whose output is their input).
    """
    v = parse_variant(wildcards.variant)
    pruning = config["pruning"]
    noise = {
        "eps": config["diffusion"]["eps"],
        "noise_seed": config["calibration"]["seed"],
    }
    out = {"seed": config["seed"]}
    if v.method in {"sparsegpt", "sink_sgpt"}:
        out.update(pruning["sparsegpt"])
    if v.method in SINK_METHODS - NORM_METHODS and v.weighting != "none":
        out.update(grid=timestep_grid(config), **noise)
    if v.method == "dwanda" and v.noise == "grid":
        out.update(grid=timestep_grid(config), **noise)
    elif v.method == "dwanda":
        out.update(pruning["dwanda"], **noise)
    if v.allocation == "owl":
        out.update(owl_m=pruning["owl"]["m"], owl_lambda=pruning["owl"]["lambda"])
    elif v.allocation in {"deeper", "earlier"}:
        out.update(schedule_epsilon=pruning["schedule"]["epsilon"])
    return out


# ------------------------------------------------------------ evaluation ---
# Input and params functions of rules `local_tasks` and `evaluate` (workflow/rules/evaluation.smk,
# method.md §7). One `evaluate` job per (model, variant) runs every task in evaluation.tasks.
from sinkprune.evaluation.tasks import LOCAL_TASKS

EVAL_TASKS = list(config["evaluation"]["tasks"])
EVAL_LOCAL = [t for t in EVAL_TASKS if t in LOCAL_TASKS]


def local_task_params(wildcards):
    """n_items, seed and the token budget of the local tasks: the shortest max length of the
    evaluated embedded models, and the complete_line task's gen_length."""
    lengths = [
        config["models"][m]["arch"].get("max_sequence_length", 64)
        for m in config["evaluation"]["models"]
        if "arch" in config["models"][m]
    ]
    complete = config["evaluation"]["tasks"].get("shakespeare_complete_line", {})
    return {
        "n_items": config["evaluation"]["local_tasks"]["n_items"],
        "seed": config["seed"],
        "max_tokens": min(lengths) if lengths else 512,
        "gen_tokens": complete.get("gen_length", 8),
    }


def eval_inputs(wildcards):
    """The variant's checkpoint (prune_report.json in its HF dir), the test split for
    heldout.json, and the local task YAMLs when local tasks are evaluated."""
    inputs = {
        "checkpoint": f"{RESULTS}/{wildcards.model}/pruned/{wildcards.variant}/prune_report.json",
        "test": f"{RESULTS}/corpus/test.txt",
    }
    if EVAL_LOCAL:
        inputs["tasks"] = [f"{RESULTS}/tasks/{t}.yaml" for t in EVAL_LOCAL]
    if EVAL_JOB_PER == "variant":  # the same job writes ppl.json
        inputs["ppl_text"] = f"{RESULTS}/corpus/ppl_text.txt"
    return inputs


def ppl_inputs(wildcards):
    """The variant's checkpoint and the perplexity protocol's text (rule perplexity)."""
    return {
        "checkpoint": f"{RESULTS}/{wildcards.model}/pruned/{wildcards.variant}/prune_report.json",
        "ppl_text": f"{RESULTS}/corpus/ppl_text.txt",
    }


def ppl_text_params(wildcards):
    """Params of `ppl_text`, the corpus settings (hub datasets are re-read for their test
    records), the seed (carved splits) and evaluation.ppl.rows."""
    return {
        "corpus": dict(config["corpus"]),
        "seed": config["seed"],
        "rows": config["evaluation"]["ppl"]["rows"],
    }


def ppl_params(wildcards):
    """evaluation.ppl and Dream's mask-probability floor eps (diffusion.eps: the release passes
    its --noise_eps to eval_ppl_dream)."""
    return {**config["evaluation"]["ppl"], "eps": config["diffusion"]["eps"]}


EVAL_JOB_PER = config["evaluation"]["job_per"]
EVAL_TASK_PATTERN = "|".join(re.escape(t) for t in EVAL_TASKS)


def eval_task_params(wildcards):
    """{task: settings} of evaluation.tasks (num_fewshot, cfg, mc_num, batch_size, limit,
    metric, gen_length, steps, block_length, and the estimator options: evaluation.estimator
    with the task's changes): every task, or the job's `task` wildcard.
    """
    tasks = config["evaluation"]["tasks"]
    names = [wildcards.task] if "task" in wildcards.keys() else list(tasks)
    return {t: res.task_settings(config, t) for t in names}


def eval_run_params(wildcards):
    """Heldout settings (evaluation.heldout), the seed, and whether the job must see a GPU."""
    return {
        "heldout": dict(config["evaluation"]["heldout"]),
        "seed": config["seed"],
        "require_gpu": res.gpus("evaluate", model_cfg(wildcards)) > 0,
    }


def ppl_run_params(wildcards):
    """The seed and whether the job must see a GPU (rule perplexity; no heldout settings, so
    editing evaluation.heldout does not rerun it)."""
    return {
        "seed": config["seed"],
        "require_gpu": res.gpus("perplexity", model_cfg(wildcards)) > 0,
    }


# ------------------------------------------------------------- resources ---
def mem_mb_for(stage):
    """Resource function for `mem_mb` of `stage` (scaled by attempt)."""

    def mem(wildcards, attempt):
        job = res.job_size(stage, config, wildcards)
        return res.mem_mb(stage, model_cfg(wildcards), attempt, **job)

    return mem


def runtime_for(stage):
    def runtime(wildcards, attempt):
        job = res.job_size(stage, config, wildcards)
        return res.runtime_min(stage, model_cfg(wildcards), attempt, **job)

    return runtime


def threads_for(stage):
    """`threads` of `stage` for the job's model (1 for embedded models)."""

    def threads(wildcards):
        return res.threads(stage, model_cfg(wildcards))

    return threads


def gpu_for(stage):
    """`gpu` of `stage` for the job's model: 1 for hub models on GPU stages, else 0."""

    def gpu(wildcards):
        return res.gpus(stage, model_cfg(wildcards))

    return gpu


def gpu_model_for(stage):
    """`gpu_model` (SLURM `--gpus=<model>:N`): $SINKPRUNE_GPU_MODEL for jobs that ask for a GPU,
    unset otherwise (resources.gpu_model says why the profile cannot set it)."""

    def gpu_model(wildcards):
        requested = os.environ.get("SINKPRUNE_GPU_MODEL")
        return res.gpu_model(stage, model_cfg(wildcards), requested)

    return gpu_model


# --------------------------------------------------------------- targets ---
def corpus_targets():
    if not TRAINED:
        return []
    return [f"{RESULTS}/corpus/stats.json", f"{RESULTS}/tokenizer/tokenizer.json"]


def model_targets():
    """Trained model directories (train_model's output; train_metrics.json is inside)."""
    return [f"{RESULTS}/models/{m}" for m in TRAINED]


def model_kind(wildcards):
    """'dlm' or 'ar' of the job's model (params of sink_stats)."""
    return model_cfg(wildcards)["kind"]


def model_kinds():
    """{model: kind} of every configured model (params of sink_figures)."""
    return {m: config["models"][m]["kind"] for m in MODELS}


def sink_targets():
    """Per-model sink scores/stats, the AR-vs-DLM table and the sink figures (method.md §4, §6)."""
    figures = expand(
        f"{RESULTS}/figures/sinks/{{name}}.{{ext}}",
        name=["heatmap", "dominant_position", "metrics"],
        ext=["png", "pdf"],
    )
    return (
        expand(
            f"{RESULTS}/{{model}}/sinks/{{name}}",
            model=MODELS,
            name=["scores.parquet", "stats.json"],
        )
        + [f"{RESULTS}/tables/sink_properties.{ext}" for ext in ("md", "csv")]
        + figures
        + [f"{RESULTS}/figures/sinks/animation.gif"]
    )


def prune_targets():
    return [
        f"{RESULTS}/{m}/pruned/{v}/prune_report.json"
        for m in config["pruning"].get("models", [])
        for v in variant_names(m)
    ]


def eval_targets():
    tasks = list(config["evaluation"]["tasks"])
    return [
        f"{RESULTS}/{m}/eval/{v}/{name}"
        for m in config["evaluation"].get("models", [])
        for v in variant_names(m)
        for name in [f"{t}.json" for t in tasks] + ["heldout.json", "ppl.json"]
    ]


def ablated_models():
    """Models that are pruned and evaluated: the ones the ladder and allocation reports cover."""
    evaluated = config["evaluation"].get("models", [])
    return [m for m in config["pruning"].get("models", []) if m in evaluated]


def ladder_variant_names(model):
    """Every rung of every `pruning.ablation` entry of `model` (config.WANDA_LADDER, ...)."""
    return [
        v.name
        for entry in config["pruning"].get("ablation", [])
        for sparsity in entry["sparsities"]
        for ladder in LADDERS
        for v in ladder_variants(ladder, entry["sparsity_type"], sparsity)
    ]


def eval_files(model, names):
    tasks = list(config["evaluation"]["tasks"])
    return [
        f"{RESULTS}/{model}/eval/{v}/{name}"
        for v in names
        for name in [f"{t}.json" for t in tasks] + ["heldout.json"]
    ]


def ladder_inputs(wildcards):
    """The eval files of every rung (rule sink_ladder)."""
    return [f for m in ablated_models() for f in eval_files(m, ladder_variant_names(m))]


def allocation_variant_names(model):
    """Variants of `model` with a non-uniform allocation, and the variants they are compared
    with: the same method uniform, and the baseline method with the same allocation."""
    pairs = allocation_comparisons(variants(config, model))
    return list(dict.fromkeys(v.name for pair in pairs for v in pair))


def allocation_params(wildcards):
    """The compared variants of the job's model (params of rule allocation)."""
    return allocation_variant_names(wildcards.model)


def allocation_inputs(wildcards):
    """prune_report.json (per-layer sparsities) and eval files of the compared variants."""
    names = allocation_variant_names(wildcards.model)
    return {
        "reports": [
            f"{RESULTS}/{wildcards.model}/pruned/{v}/prune_report.json" for v in names
        ],
        "evals": eval_files(wildcards.model, names),
    }


def ablation_targets():
    """The ladder table (when `pruning.ablation` is set) and the allocation table and figure of
    every pruned and evaluated model with a non-uniform allocation."""
    out = []
    if config["pruning"].get("ablation") and ablated_models():
        out += [f"{RESULTS}/tables/ablation/sink_ladder.{ext}" for ext in ("md", "csv")]
    for m in ablated_models():
        if allocation_variant_names(m):
            out += [f"{RESULTS}/tables/allocation/{m}.{ext}" for ext in ("md", "csv")]
            out += [f"{RESULTS}/figures/allocation/{m}.{ext}" for ext in ("png", "pdf")]
    return out


def report_targets():
    """Table and figure folders of sinkprune.report (rules tables, figures)."""
    if not config["evaluation"].get("models"):
        return []
    return [f"{RESULTS}/tables/pruning", f"{RESULTS}/figures/pruning"]


def all_targets():
    return (
        corpus_targets()
        + model_targets()
        + sink_targets()
        + prune_targets()
        + eval_targets()
        + report_targets()
        + ablation_targets()
    )
