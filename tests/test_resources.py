"""Resource functions (src/sinkprune/resources.py) against hand-computed values."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from sinkprune import resources as res

ROOT = Path(__file__).resolve().parents[1]
LLADA = {
    "family": "llada",
    "kind": "dlm",
    "source": "hub",
    "hub_id": "x",
    "n_params": 8e9,
    "arch": {"d_model": 4096, "n_layers": 32, "n_heads": 32},
}
TINY = {
    "family": "llada",
    "kind": "dlm",
    "source": "train",
    "arch": {"d_model": 8, "n_layers": 2, "n_heads": 2, "mlp_hidden_size": 16},
}
JOB = {"nsamples": 128, "seqlen": 4096, "timesteps": 10}


def test_n_params_from_arch_by_hand():
    # per block: q,k,v (8x8 each) + o (8x8) + 3 MLP (8x16) + 2 norms (8) = 256 + 384 + 16 = 656
    # 2 blocks 1312; embeddings + head 2 * 4096 * 8 = 65536; final norm 8
    assert res.n_params(TINY) == 1312 + 65536 + 8
    assert res.n_params(LLADA) == 8e9


def test_n_params_of_paper_models_match_their_config_json():
    import json

    cfg = json.loads((ROOT / "tests/fixtures/llada-8b-base.config.json").read_text())
    d, layers, mlp, vocab = (
        cfg["d_model"],
        cfg["n_layers"],
        cfg["mlp_hidden_size"],
        cfg["vocab_size"],
    )
    by_hand = layers * (4 * d * d + 3 * d * mlp + 2 * d) + 2 * vocab * d + d
    paper = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    assert paper["models"]["LLaDA-8B-Base"]["n_params"] == by_hand == 8015581184


def test_forward_flops_by_hand():
    # 2 N T + 4 L d T^2 = 2 * 8e9 * 4096 + 4 * 32 * 4096 * 4096^2
    assert res.forward_flops(LLADA, 4096) == 2 * 8e9 * 4096 + 4 * 32 * 4096 * 4096**2
    no_arch = {k: v for k, v in LLADA.items() if k != "arch"}
    assert res.shape(no_arch) == (32, 4096)  # an 8B model without arch is sized as LLaDA-8B


def test_forward_counts_follow_method_md():
    assert res.forwards("attention_mass", **JOB) == 1280  # samples x timesteps
    assert res.forwards("sink_norms", **JOB) == 1280  # one statistics pass per (sample, t)
    assert res.forwards("prune", **JOB, method="sink") == 0  # mask selection from the norms
    assert res.forwards("prune", **JOB, method="sink_sp") == 0
    assert res.forwards("prune", **JOB, method="wanda") == 2 * 128  # each block runs twice
    assert res.forwards("prune", **JOB, method="sink_sgpt") == 2 * 128  # ω̄ from the scores
    assert res.forwards("prune", **JOB, method="magnitude") == 0
    # dwanda: sequential over the noised copies (mask_repeats each, or one per grid level)
    assert res.forwards("prune", **JOB, method="dwanda", mask_repeats=8) == 2 * 128 * 8
    assert res.forwards("prune", **JOB, method="dwanda", noise="grid") == 2 * 128 * 10
    # OWL: a dense scoring pass before the sequential pruning pass; none for sink
    assert res.forwards("prune", **JOB, method="wanda", allocation="owl") == 2 * 2 * 128
    assert res.forwards("prune", **JOB, method="sink", allocation="owl") == 0


def test_gpu_hours_attention_mass_by_hand():
    flops = 1280 * (2 * 8e9 * 4096 + 4 * 32 * 4096 * 4096**2)
    assert res.gpu_hours("attention_mass", LLADA, **JOB) == pytest.approx(flops / 100e12 / 3600)


def test_eval_cost_by_hand():
    # piqa: 1838 docs x 2 choices x mc_num 128 x 2 (cfg > 0) forwards of 50 tokens
    tcfg = {"num_fewshot": 0, "cfg": 0.5, "mc_num": 128}
    fwd = 2 * 8e9 * 50 + 4 * 32 * 4096 * 50**2
    assert res.eval_cost(LLADA, "piqa", tcfg) == pytest.approx(1838 * 2 * 128 * 2 * fwd)
    # limit caps the documents; no cfg -> one pass
    tcfg = {"num_fewshot": 0, "cfg": 0.0, "mc_num": 128, "limit": 100}
    assert res.eval_cost(LLADA, "piqa", tcfg) == pytest.approx(100 * 2 * 128 * fwd)
    # gsm8k: 1319 x steps forwards of (120 + 5 * 130 + 1024) tokens
    tcfg = {"num_fewshot": 5, "gen_length": 1024, "steps": 1024, "metric": "exact_match"}
    n = 120 + 5 * 130 + 1024
    fwd = 2 * 8e9 * n + 4 * 32 * 4096 * n**2
    assert res.eval_cost(LLADA, "gsm8k", tcfg) == pytest.approx(1319 * 1024 * fwd)


def test_mem_mb_by_hand_and_attempt_scaled():
    # attention mass: bf16 weights 16000 MB + 2 x parquet (128*10*32*4096 rows x 48 B) + 2000
    parquet = 128 * 10 * 32 * 4096 * 48 / 1e6
    expect = math.ceil(16000 + 2 * parquet + 2000)
    assert res.mem_mb("attention_mass", LLADA, 1, **JOB) == expect
    for stage in res.STAGES:
        one = res.mem_mb(stage, LLADA, 1, **JOB)
        assert one >= res.FLOOR_MB
        assert res.mem_mb(stage, LLADA, 3, **JOB) == pytest.approx(3 * one, abs=3)
    assert res.mem_mb("prune", TINY, 1) <= 4000  # embedded models stay small
    assert res.mem_mb("prune", TINY, 2) == 2 * res.mem_mb("prune", TINY, 1)


def test_mem_grows_with_job_size():
    small = {**JOB, "nsamples": 16}
    assert res.mem_mb("sink_masks", LLADA, 1, **small) < res.mem_mb("sink_masks", LLADA, 1, **JOB)
    assert res.mem_mb("prune", LLADA, 1, **JOB) > 4 * 8e9 / 1e6  # fp32 working copy


def test_runtime_by_hand_and_attempt_scaled():
    hours = res.gpu_hours("attention_mass", LLADA, **JOB)
    expect = math.ceil(hours * 60 * res.SAFETY + res.LOAD_MIN)
    assert res.runtime_min("attention_mass", LLADA, 1, **JOB) == expect
    two = res.runtime_min("attention_mass", LLADA, 2, **JOB)
    assert 2 * expect - 2 <= two <= 2 * expect  # attempt x the unrounded estimate
    sink = res.runtime_min("prune", LLADA, 1, **JOB, method="sink")
    wanda = res.runtime_min("prune", LLADA, 1, **JOB, method="wanda")
    magnitude = res.runtime_min("prune", LLADA, 1, **JOB, method="magnitude")
    assert sink == magnitude < wanda  # no forward (norms precomputed) vs samples forwards
    norms = res.runtime_min("sink_norms", LLADA, 1, **JOB)
    assert norms == res.runtime_min("attention_mass", LLADA, 1, **JOB)  # samples x timesteps
    assert res.runtime_min("train", TINY, 2) == 2 * res.runtime_min("train", TINY, 1)
    long_cap = {**TINY, "train": {"minutes": 45.0}}
    assert res.runtime_min("train", long_cap, 1) == 45 + res.TRAIN_MARGIN_MIN
    assert res.runtime_min("train", {**TINY, "train": {"minutes": 2.5}}, 1) == 30


def test_gpus():
    for stage in res.STAGES:
        assert res.gpus(stage, TINY) == 0  # embedded models are CPU-sized
        assert res.gpus(stage, LLADA) == (1 if stage in res.GPU_STAGES else 0)
    assert res.GPU_STAGES == {
        "attention_mass", "sink_norms", "prune", "evaluate", "heldout", "perplexity"
    }  # fmt: skip


def test_threads_two_for_training_wide_embedded_models_else_one():
    wide = {**TINY, "arch": {**TINY["arch"], "d_model": res.TRAIN_THREADS_MIN_WIDTH}}
    narrow = {**TINY, "arch": {**TINY["arch"], "d_model": res.TRAIN_THREADS_MIN_WIDTH - 8}}
    assert res.threads("train", wide) == 2
    assert res.threads("train", narrow) == 1
    for stage in res.STAGES - {"train"}:
        assert res.threads(stage, wide) == 1 and res.threads(stage, narrow) == 1
    assert res.threads("prune", LLADA) == 4 and res.threads("train", LLADA) == 2
    shipped = yaml.safe_load((ROOT / "config/config.yaml").read_text())["models"]
    micro = yaml.safe_load((ROOT / ".test/config/config.yaml").read_text())["models"]
    assert {m: res.threads("train", c) for m, c in shipped.items()} == {"tiny-dlm": 2, "tiny-ar": 2}
    assert {res.threads("train", c) for c in micro.values()} == {1}


def test_job_size_from_config_and_wildcards():
    cfg = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    job = res.job_size("prune", cfg, {"model": "LLaDA-8B-Base", "variant": "sink_2of4_0.5"})
    assert job == {
        "nsamples": 128,
        "seqlen": 4096,
        "timesteps": 10,
        "method": "sink",
        "noise": "random",
        "allocation": "uniform",
        "mask_repeats": 8,
    }
    job = res.job_size("prune", cfg, {"model": "m", "variant": "wanda-owl_unstructured_0.5"})
    assert (job["method"], job["allocation"]) == ("wanda", "owl")
    job = res.job_size("evaluate", cfg, {"model": "m", "variant": "dense", "task": "piqa"})
    assert job["task"] == "piqa" and job["task_cfg"]["mc_num"] == 128 and job["method"] == "dense"
    # rule evaluate runs every task of a variant in one job: its estimate is the sum + heldout
    job = res.job_size("evaluate", cfg, {"model": "m", "variant": "dense"})
    assert set(job["tasks"]) == set(cfg["evaluation"]["tasks"]) and job["heldout"] == (64, 2048, 3)
    llada = cfg["models"]["LLaDA-8B-Base"]
    per_task = [
        res.gpu_hours("evaluate", llada, task=t, task_cfg=c) for t, c in job["tasks"].items()
    ]
    total = sum(per_task) + res.gpu_hours("heldout", llada, heldout=job["heldout"])
    total += res.gpu_hours("perplexity", llada, ppl=job["ppl"])
    assert res.gpu_hours("evaluate", llada, **job) == pytest.approx(total)


def test_perplexity_job_size_and_cost():
    """The release's protocol: rows · 70 tokens / stride chunks × mc_num forwards of
    prompt_length + chunk_size tokens (paper: 128 rows → 140 chunks × 8 draws × 1024 tokens)."""
    cfg = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    job = res.job_size("perplexity", cfg, {"model": "m", "variant": "dense"})
    assert job["ppl"] == (140, 8, 1024)
    llada = cfg["models"]["LLaDA-8B-Base"]
    flops = 140 * 8 * (2 * llada["n_params"] * 1024 + 4 * 32 * 4096 * 1024**2)
    assert res.gpu_hours("perplexity", llada, **job) == pytest.approx(flops / 100e12 / 3600)
    cfg["evaluation"]["ppl"]["rows"] = None  # the whole test split: ~300k tokens
    assert res.job_size("perplexity", cfg)["ppl"][0] == 300_000 // 64


def test_every_stage_in_the_rules_has_a_formula():
    used = set()
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        used |= set(re.findall(r'(?:mem_mb|runtime|gpu)_for\("(\w+)"\)', smk.read_text()))
    assert used, "no rule uses the resource functions"
    assert used <= res.STAGES, f"stages without a formula: {used - res.STAGES}"


def test_paper_gpu_hours_rows():
    cfg = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    rows = res.paper_gpu_hours(cfg)
    for model in cfg["models"]:
        methods = {
            m if e.get("allocation", "uniform") == "uniform" else f"{m}-{e['allocation']}"
            for e in cfg["pruning"]["grid"]
            if model in e.get("models", [model])
            for m in e["methods"]
        }
        # attention_mass, sink_norms, one prune row per method (and allocation), one per task,
        # heldout, ppl
        per_model = 1 + 1 + len(methods) + len(cfg["evaluation"]["tasks"]) + 1 + 1
        assert sum(r["model"] == model for r in rows) == per_model, model
    assert all(r["gpu_hours"] >= 0 for r in rows)


def test_rows_per_request_follow_the_estimator():
    std = {"mc_num": 128}
    assert res.rows_per_request("piqa", std) == 128
    # gpqa's " (A)" is 3 tokens: 7 patterns, enumerated from exact_max_patterns 7 on
    exact = {"mc_num": 128, "estimator": {"exact_max_patterns": 7}}
    assert res.rows_per_request("gpqa_main_n_shot", exact) == 7
    assert res.rows_per_request("piqa", exact) == 128
    short = {"mc_num": 128, "estimator": {"exact_max_patterns": 6}}
    assert res.rows_per_request("gpqa_main_n_shot", short) == 128
    # stopping: requests (wall time) assume the cap, the estimate its measured share
    stop = {"mc_num": 128, "estimator": {"stopping": True, "cap": 64}}
    assert res.rows_per_request("piqa", stop) == 64
    assert res.rows_per_request("piqa", stop, expected=True) == 64 * res.STOP_SHARE
    no_cap = {"mc_num": 96, "estimator": {"stopping": True}}
    assert res.rows_per_request("piqa", no_cap) == 96
    fwd = 2 * 8e9 * 50 + 4 * 32 * 4096 * 50**2
    tcfg = {"cfg": 0.5, **stop}
    assert res.eval_cost(LLADA, "piqa", tcfg) == pytest.approx(1838 * 2 * 64 * 2 * fwd)


def test_fast_estimator_switch_lowers_the_paper_estimate():
    paper = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    fast = yaml.safe_load((ROOT / "config/fast_estimator.yaml").read_text())
    merged = res.merge(paper, fast)
    assert merged["evaluation"]["tasks"] == paper["evaluation"]["tasks"]  # only the estimator
    assert res.task_settings(paper, "piqa")["estimator"]["crn"] is False  # paper: standard
    est = res.task_settings(merged, "piqa")["estimator"]
    assert est["crn"] and est["stopping"] and est["stop_on"] == "acc_norm"  # piqa's metric
    assert res.task_settings(merged, "winogrande")["estimator"]["stop_on"] == "acc"

    def likelihood_hours(cfg):  # generation (gsm8k) and heldout do not use the estimator
        rows = res.paper_gpu_hours(cfg)
        skip = ("evaluate (gsm8k)", "evaluate (heldout)")
        return sum(
            r["gpu_hours"]
            for r in rows
            if r["stage"].startswith("evaluate (") and r["stage"] not in skip
        )

    assert likelihood_hours(merged) < 0.5 * likelihood_hours(paper)
    # the wall-time request of a stopping job assumes the cap
    llada = paper["models"]["LLaDA-8B-Base"]
    job = res.job_size("evaluate", merged, {"model": "m", "variant": "dense", "task": "piqa"})
    cap = job["task_cfg"]["estimator"]["cap"]
    assert res.gpu_hours("evaluate", llada, **job) == pytest.approx(
        res.eval_cost(llada, "piqa", {**job["task_cfg"], "mc_num": cap}) / res.GPU_FLOPS / 3600
    )
