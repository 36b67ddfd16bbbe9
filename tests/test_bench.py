"""Benchmarks (`make bench`, sinkprune.bench) in quick mode, and the 8B-shaped GPU check on CPU
with shrunk dimensions: they run, report what they measured, and their invariants hold."""

import json
from pathlib import Path

import pytest
import torch

from sinkprune.bench import bench_names, run_one
from sinkprune.bench.gpu_check import SMALL, model_config, run_check

torch.set_num_threads(1)


def test_gpu_check_runs_every_stage_on_cpu():
    record = run_check(
        shape=SMALL,
        device="cpu",
        dtype=torch.float32,
        steps=2,
        n_requests=2,
        mc_num=4,
        mc_batch=4,
        estimator_items=1,
    )
    stages = [r["stage"] for r in record["stages"]]
    assert stages == ["build_model", "attention_mass", "sink_scores", "sink_norms",
                      "mc_loglikelihood", "estimator_throughput", "prune_sink", "build_model_again", "prune_sink_sgpt"]  # fmt: skip
    by = {r["stage"]: r for r in record["stages"]}
    assert by["attention_mass"]["forwards"] == 2 * 2 and by["sink_norms"]["forwards"] == 4
    assert by["attention_mass"]["rows"] == 2 * 2 * SMALL["n_layers"] * SMALL["max_sequence_length"]
    assert by["prune_sink"]["sparsity"] == 0.5 and by["prune_sink_sgpt"]["sparsity"] == 0.5
    assert by["mc_loglikelihood"]["finite"] and not record["ran_on_gpu"]
    est = by["estimator_throughput"]
    assert est["requests"] == 4 and est["speedup"] > 0 and len(est["requests_per_s"]) == 2
    assert all(r["seconds"] >= 0 and r["peak_gpu_mb"] is None for r in record["stages"])
    json.dumps(record)


def test_gpu_check_defaults_are_llada_8b():
    fixture = json.loads((Path(__file__).parent / "fixtures/llada-8b-base.config.json").read_text())
    cfg = model_config()
    for key in ("d_model", "n_layers", "n_heads", "mlp_hidden_size", "vocab_size",
                "max_sequence_length", "mask_token_id", "rope_theta"):  # fmt: skip
        assert getattr(cfg, key) == fixture[key], key


def test_bench_modules_are_listed():
    names = bench_names()
    assert {"attention_memory", "sparsegpt_solve", "sweep_cost", "wanda_select"} <= set(names)
    assert "gpu_check" not in names and not any(n.startswith("_") for n in names)


@pytest.mark.parametrize(
    "name", ["sweep_cost", "wanda_select", "sparsegpt_solve", "attention_memory"]
)
def test_quick_benchmark(name):
    result = run_one(name, quick=True)
    assert result["name"] == name and result["markdown"].startswith("## ")
    json.dumps(result)
    if name == "sweep_cost":
        arms = {r["arm"]: r for r in result["rows"]}
        # counted by the hook: 2 samples x 2 steps = 4 noised inputs; 7 variants
        assert arms["sinkprune"]["forwards"] == 2 * 4  # mass + norms, once
        assert arms["sinkprune before #13"]["forwards"] == 4 + 7 * 4
        assert arms["release-style"]["forwards"] == 7 * 2 * 4
        assert result["masks_equal_across_arms"]
    elif name == "attention_memory":
        naive, chunked = result["rows"][0], result["rows"][1]
        assert naive["path"] == "materialised" and chunked["chunk"] == 64
        assert all(r["sum_ok"] for r in result["rows"])  # every path: Σ mass = H·T
        assert chunked["bytes"] < naive["bytes"]
    else:
        assert all(r["identical_masks"] for r in result["rows"])


def test_main_runs_benchmarks_in_parallel_workers(tmp_path):
    """`make bench` runs `--jobs 2`: every benchmark's JSON and bench.md come back from the
    spawned workers, and a bad --jobs is refused."""
    from sinkprune.bench import main

    main(["--quick", "--jobs", "2", "--only", "wanda_select", "attention_memory",
          "--out", str(tmp_path)])  # fmt: skip
    assert {p.name for p in tmp_path.glob("*.json")} == {
        "wanda_select.json",
        "attention_memory.json",
    }
    md = (tmp_path / "bench.md").read_text()
    assert "## Wanda" in md and "## Attention-mass" in md
    with pytest.raises(SystemExit, match="--jobs"):
        main(["--quick", "--jobs", "0", "--out", str(tmp_path)])
