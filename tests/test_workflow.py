"""End to end: the real Snakefile on the micro config (.test/config/config.yaml), in a temp workdir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
MICRO = REPO / ".test" / "config" / "config.yaml"


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(MICRO),
        *args,
    ]
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("micro")
    for name in ("config", "resources"):
        (work / name).symlink_to(REPO / name)
    snakemake(work, "--cores", "2")
    return work


@pytest.mark.slow
def test_micro_workflow_produces_tables(micro_run: Path):
    res = micro_run / "results"
    assert json.loads((res / "corpus" / "stats.json").read_text())["train"]["bytes"] > 0
    scores = pd.read_parquet(res / "tiny-dlm" / "sinks" / "scores.parquet")
    assert len(scores) > 0
    sink_table = pd.read_csv(res / "tables" / "sink_properties.csv")
    assert len(sink_table) > 0
    for variant in ("dense", "wanda_unstructured_0.5", "sink_unstructured_0.5"):
        report = json.loads(
            (res / "tiny-dlm" / "pruned" / variant / "prune_report.json").read_text()
        )
        assert report["method"] == variant.split("_unstructured")[0]
        out = json.loads(
            (res / "tiny-dlm" / "eval" / variant / "shakespeare_shuffle.json").read_text()
        )
        assert "shakespeare_shuffle" in out["results"]
        assert len(out["items"]["ids"]) == 10  # per-item record for paired CIs
        assert out["settings"]["estimator"]["crn"] and out["config"]["estimator"]["stopping"]
    tables = sorted(p.name for p in (res / "tables").rglob("*") if p.is_file())
    assert any(name.endswith(".md") for name in tables)
    assert any(name.endswith(".tex") for name in tables)
    for csv in (res / "tables").rglob("*.csv"):
        pd.read_csv(csv)


@pytest.mark.slow
def test_micro_workflow_writes_the_ladder_and_the_allocation_report(micro_run: Path):
    res = micro_run / "results"
    ladder = pd.read_csv(res / "tables" / "ablation" / "sink_ladder.csv")
    assert set(ladder["ladder"]) == {"wanda", "sparsegpt"}
    assert list(ladder[ladder["ladder"] == "wanda"]["rung"].drop_duplicates()) == [
        "1", "2", "3", "4", "5", "6", "total"
    ]  # fmt: skip
    assert ladder["delta"].notna().any()
    assert (
        "Wanda → sink-aware Wanda" in (res / "tables" / "ablation" / "sink_ladder.md").read_text()
    )
    alloc = pd.read_csv(res / "tables" / "allocation" / "tiny-dlm.csv")
    pairs = alloc[alloc["reference"].notna()][["variant", "reference"]].drop_duplicates()
    assert pairs.values.tolist() == [["sink-owl_unstructured_0.5", "sink_unstructured_0.5"]]
    report = json.loads(
        (
            res / "tiny-dlm" / "pruned" / "sink-owl_unstructured_0.5" / "prune_report.json"
        ).read_text()
    )
    assert abs(report["sparsity"]["overall"] - 0.5) <= 1e-6
    assert report["allocation"]["kind"] == "owl"
    assert (res / "figures" / "allocation" / "tiny-dlm.png").stat().st_size > 1000
    delta = pd.read_csv(res / "tables" / "pruning" / "tiny-dlm" / "unstructured_delta.csv")
    assert {"shakespeare_shuffle_lo", "shakespeare_shuffle_sig", "avg_hi"} <= set(delta.columns)
    main = pd.read_csv(res / "tables" / "pruning" / "tiny-dlm" / "unstructured.csv")
    assert {"shakespeare_shuffle_stderr", "ce_t0.5", "bits_per_token"} <= set(main.columns)
    assert "Sink-aware Wanda vs Wanda" in (res / "tables" / "claims.md").read_text()


@pytest.mark.slow
def test_micro_workflow_runs_the_dream_family(micro_run: Path):
    """tiny-dream (Qwen2-style, GQA 8 heads / 4 KV groups, shifted logits) through training,
    calibration, attention mass, sinks, unstructured and GQA-structured pruning, evaluation."""
    res = micro_run / "results"
    metrics = json.loads((res / "models" / "tiny-dream" / "train_metrics.json").read_text())
    assert metrics["family"] == "dream" and metrics["steps"] == 30
    # Dream calibration: first and last position never masked, all others masked at t = 1
    mass = pd.read_parquet(res / "tiny-dream" / "attention" / "mass.parquet")
    last = mass["position"].max()
    ends = mass[mass["position"].isin([0, last])]
    assert len(ends) > 0 and not ends["masked"].any()
    at_one = mass[(mass["t"] == 1.0) & ~mass["position"].isin([0, last])]
    assert len(at_one) > 0 and at_one["masked"].all()
    assert "tiny-dream mean" in pd.read_csv(res / "tables" / "sink_properties.csv").columns
    pruned = res / "tiny-dream" / "pruned" / "sink_sp_structured_0.3"
    report = json.loads((pruned / "prune_report.json").read_text())
    s = report["structured"]  # one of 4 KV groups (2 query heads each) removed per layer
    assert (s["n_kv_heads"], s["n_heads"], s["head_dim"]) == (3, 6, 4)
    cfg = json.loads((pruned / "config.json").read_text())
    assert cfg["num_key_value_heads"] == 3 and cfg["auto_map"]["AutoModel"].endswith("DreamModel")
    assert "modeling_dream.py" in report["files"]
    for variant in ("dense", "wanda_unstructured_0.5", "sink_unstructured_0.5",
                    "sink_sp_structured_0.3"):  # fmt: skip
        out = res / "tiny-dream" / "eval" / variant
        task = json.loads((out / "shakespeare_shuffle.json").read_text())
        assert "shakespeare_shuffle" in task["results"]
        assert json.loads((out / "heldout.json").read_text())
        assert json.loads((out / "ppl.json").read_text())  # Dream's own PPL forward process
    assert (res / "tables" / "pruning" / "tiny-dream" / "unstructured.csv").is_file()


@pytest.mark.slow
def test_micro_workflow_is_complete_and_reports(micro_run: Path):
    dry = snakemake(micro_run, "-n", "--cores", "1")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    snakemake(micro_run, "--report", str(micro_run / "report.html"))
    assert (micro_run / "report.html").stat().st_size > 10_000
