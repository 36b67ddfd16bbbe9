# Config validation, input functions, target lists and resource functions.
# Plain Python helpers; the logic they call lives in src/sinkprune/ (config.py, resources.py).
from pathlib import Path

from sinkprune import resources as res
from sinkprune.config import parse_variant, validate_config, variants

RESULTS = "results"
SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"

validate_config(config, SCHEMA)

MODELS = list(config["models"])
TRAINED = [m for m in MODELS if config["models"][m]["source"] == "train"]
HUB = [m for m in MODELS if config["models"][m]["source"] == "hub"]


wildcard_constraints:
    model="|".join(MODELS) if MODELS else "NONE",
    variant=r"dense|[a-z_]+_(unstructured|structured|2of4|4of8)_[0-9.]+",


# ---------------------------------------------------------------- models ---
def model_cfg(wildcards):
    return config["models"][wildcards.model]


def model_dir(wildcards):
    """Directory of the dense base model: trained here or downloaded from the hub."""
    if config["models"][wildcards.model]["source"] == "train":
        return f"{RESULTS}/models/{wildcards.model}"
    return f"resources/models/{wildcards.model}"


def variant_names(model):
    return [v.name for v in variants(config, model)]


# ------------------------------------------------------------- resources ---
def mem_mb_for(stage):
    """Resource function for `mem_mb` of `stage` (scaled by attempt)."""

    def mem(wildcards, attempt):
        return res.mem_mb(stage, model_cfg(wildcards), attempt)

    return mem


def runtime_for(stage):
    def runtime(wildcards, attempt):
        return res.runtime_min(stage, model_cfg(wildcards), attempt)

    return runtime


def gpu_for(stage):
    def gpu(wildcards):
        return res.gpus(stage, model_cfg(wildcards))

    return gpu


# --------------------------------------------------------------- targets ---
def corpus_targets():
    if not TRAINED:
        return []
    return [f"{RESULTS}/corpus/stats.json", f"{RESULTS}/tokenizer/tokenizer.json"]


def model_targets():
    return [f"{RESULTS}/models/{m}/train_metrics.json" for m in TRAINED]


def sink_targets():
    return expand(
        f"{RESULTS}/{{model}}/sinks/{{name}}",
        model=MODELS,
        name=["scores.parquet", "stats.json"],
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
        for name in [f"{t}.json" for t in tasks] + ["heldout.json"]
    ]


def report_targets():
    return []


def all_targets():
    return (
        corpus_targets()
        + model_targets()
        + sink_targets()
        + prune_targets()
        + eval_targets()
        + report_targets()
    )
