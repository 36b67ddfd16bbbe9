"""config/paper.yaml: valid, the paper's settings, and a dry run that builds the whole DAG offline
with the number of jobs per rule computed here from the config."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from sinkprune.config import (
    NORM_METHODS,
    allocation_comparisons,
    timestep_grid,
    validate_config,
    variants,
)

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "paper.yaml"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

# method.md §7: task -> (num_fewshot, cfg, mc_num, batch_size); batch_size as the release's
# eval_llada.sh (--batch_size 8 for the 128-draw tasks, 1 for mmlu): 16 stratified k draws of 8
PAPER_TASKS = {
    "arc_challenge": (0, 0.5, 128, 8),
    "hellaswag": (0, 0.5, 128, 8),
    "piqa": (0, 0.5, 128, 8),
    "winogrande": (5, 0.0, 128, 8),
    "mmlu": (5, 0.0, 1, 1),
    "gpqa_main_n_shot": (5, 0.5, 128, 8),
    "truthfulqa_mc2": (0, 2.0, 128, 8),
    "arc_easy": (0, 0.5, 128, 8),
    "race": (0, 0.5, 128, 8),
}


@pytest.fixture(scope="module")
def cfg():
    return validate_config(yaml.safe_load(PAPER.read_text()), SCHEMA)


def test_models_are_pinned_hub_checkpoints(cfg):
    hub_ids = {m["hub_id"] for m in cfg["models"].values()}
    assert {"GSAI-ML/LLaDA-8B-Base", "Dream-org/Dream-v0-Base-7B"} <= hub_ids
    assert hub_ids <= {
        "GSAI-ML/LLaDA-8B-Base",
        "GSAI-ML/LLaDA-8B-Instruct",
        "GSAI-ML/LLaDA-1.5",
        "Gen-Verse/MMaDA-8B-Base",
        "Dream-org/Dream-v0-Base-7B",
    }
    for name, m in cfg["models"].items():
        assert m["source"] == "hub" and m["kind"] == "dlm", name
        assert m["n_params"] > 1e9, name
        # a commit hash, or "main" (explained in the file's header: no hash could be verified)
        assert re.fullmatch(r"[0-9a-f]{40}|main", m["revision"]), name
        assert m["family"] == ("dream" if "Dream" in m["hub_id"] else "llada"), name
    assert "revision" in PAPER.read_text().split("models:")[0]  # the header says why "main"
    assert cfg["models"]["LLaDA-8B-Base"]["paper_name"] == "LLaDA-8B-Base"


def test_calibration_and_noise_grid(cfg):
    assert cfg["corpus"]["kind"] == "hf_dataset"
    assert cfg["corpus"]["dataset"]["name"] == "wikitext-2-raw-v1"
    assert (cfg["calibration"]["nsamples"], cfg["calibration"]["seqlen"]) == (128, 4096)
    assert [round(t, 6) for _, t in timestep_grid(cfg)] == [i / 10 for i in range(1, 11)]


def test_pruning_grid(cfg):
    # the paper's grid: the first entry of each sparsity type, for every model
    grid = {}
    for e in cfg["pruning"]["grid"]:
        grid.setdefault(e["sparsity_type"], e)
    assert not any("models" in e for e in grid.values())
    assert grid["unstructured"]["sparsities"] == [0.25, 0.5, 0.75]
    assert grid["2:4"]["sparsities"] == grid["4:8"]["sparsities"] == [0.5]
    assert grid["structured"]["sparsities"] == [0.3, 0.5]
    for stype in ("unstructured", "2:4", "4:8"):
        assert {"wanda", "sink", "sparsegpt", "sink_sgpt"} <= set(grid[stype]["methods"])
    assert set(grid["structured"]["methods"]) == {"wanda_sp", "sink_sp"}
    assert set(cfg["pruning"]["models"]) == set(cfg["models"])


def test_baselines_of_the_layer_collapse_study(cfg):
    """dwanda at 50 % and 2:4, wanda and sink with OWL at 50 %, on LLaDA-8B-Base and Dream-7B
    only (issue #18); the other models get the paper's grid alone."""
    extra = {
        "dwanda_unstructured_0.5",
        "dwanda_2of4_0.5",
        "wanda-owl_unstructured_0.5",
        "sink-owl_unstructured_0.5",
    }
    for model in cfg["pruning"]["models"]:
        names = {v.name for v in variants(cfg, model)}
        if model in {"LLaDA-8B-Base", "Dream-v0-Base-7B"}:
            assert extra <= names, model
        else:
            assert not extra & names, model
    assert cfg["pruning"]["dwanda"] == {"mask_repeats": 8, "t_min": 0.0, "t_max": 1.0}
    assert cfg["pruning"]["owl"] == {"m": 5.0, "lambda": 0.08}
    assert not cfg["pruning"]["ablation"]  # the ladders run on the embedded model
    assert expected_jobs(cfg)["allocation"] == 2  # LLaDA-8B-Base and Dream-7B


def test_dense_reference_of_the_protocol(cfg):
    """The config's task settings are the LLaDA authors' lm-eval settings of the numbers that
    resources/llada_official_eval.csv marks `cfg` (no_cfg where the task's cfg is 0)."""
    import csv

    rows = list(csv.DictReader((ROOT / "resources" / "llada_official_eval.csv").open()))
    tasks = cfg["evaluation"]["tasks"]
    matched = 0
    for r in rows:
        t = tasks.get(r["task"])
        if t is None or r["eval_type"] != "ppl":
            continue
        setting = "cfg" if t["cfg"] > 0 else "no_cfg"
        if r["setting"] != setting:
            continue
        assert (t["num_fewshot"], t["cfg"], t["mc_num"]) == (
            int(r["num_fewshot"]),
            float(r["cfg"]),
            int(r["mc_num"]),
        ), r["task"]
        matched += 1
    assert matched == 7  # ARC-C, HellaSwag, TruthfulQA, WinoGrande, GPQA, PIQA, MMLU
    gsm = [r for r in rows if r["task"] == "gsm8k" and r["gen_length"] == "1024"]
    assert len(gsm) == 1 and tasks["gsm8k"]["gen_length"] == 1024


def test_tasks_of_method_md(cfg):
    ev = cfg["evaluation"]
    assert ev["include_local_tasks"] is False
    assert set(ev["tasks"]) == set(PAPER_TASKS) | {"gsm8k"}
    for task, want in PAPER_TASKS.items():
        t = ev["tasks"][task]
        assert (t["num_fewshot"], t["cfg"], t["mc_num"], t["batch_size"]) == want, task
    g = ev["tasks"]["gsm8k"]
    assert g["gen_length"] == g["steps"] == g["block_length"] == 1024


def expected_jobs(cfg) -> Counter:
    """Jobs per rule of the paper DAG, from the config and the rules' granularity."""
    models = list(cfg["models"])
    hub = [m for m in models if cfg["models"][m]["source"] == "hub"]
    trained = [m for m in models if cfg["models"][m]["source"] == "train"]
    n = Counter(
        corpus=1,
        download_model=len(hub),
        calibration=len(models),
        attention_mass=len(models),
        sink_masks=len(models),
        sink_stats=len(models),
        # one statistics pass per pruned model that has a sink / sink_sp variant
        sink_norms=sum(
            any(v.method in NORM_METHODS for v in variants(cfg, m))
            for m in cfg["pruning"]["models"]
        ),
        sink_properties=1,
        sink_figures=1,
        # one prune job per variant, dense included (it writes the dense checkpoint's report)
        prune=sum(len(variants(cfg, m)) for m in cfg["pruning"]["models"]),
        tables=1,
        figures=1,
        all=1,
    )
    # the ablation ladder table (pruning.ablation) and one allocation report per pruned and
    # evaluated model with a non-uniform allocation (workflow/rules/ablation.smk)
    reported = [m for m in cfg["pruning"]["models"] if m in cfg["evaluation"]["models"]]
    n.update(
        sink_ladder=int(bool(cfg["pruning"]["ablation"] and reported)),
        allocation=sum(bool(allocation_comparisons(variants(cfg, m))) for m in reported),
    )
    n_eval = sum(len(variants(cfg, m)) for m in cfg["evaluation"]["models"])
    if cfg["evaluation"]["job_per"] == "variant":  # one job runs every task, heldout and ppl
        n.update(evaluate=n_eval)
    else:  # one job per (variant, task), heldout and perplexity on their own
        n.update(evaluate=n_eval * len(cfg["evaluation"]["tasks"]), heldout=n_eval)
        n.update(perplexity=n_eval)
    n.update(ppl_text=1 if n_eval else 0)  # the release's perplexity text, once
    if trained:
        n.update(tokenizer=1, train_model=len(trained))
    if cfg["evaluation"]["include_local_tasks"]:
        n.update(local_tasks=1)
    return +n


def dry_run_job_counts(args: list[str], cwd: Path = ROOT) -> Counter:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        [str(SNAKEMAKE), "-n", "--quiet", "rules", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=80,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    table = out.split("Job stats:")[1]
    counts = Counter()
    for line in table.splitlines():
        m = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def test_dry_run_builds_the_paper_dag(cfg):
    """The whole paper DAG from config/paper.yaml alone (the embedded config must not be merged
    in), offline: no download happens at DAG time."""
    counts = dry_run_job_counts(["--configfile", str(PAPER)])
    assert counts == expected_jobs(cfg)
