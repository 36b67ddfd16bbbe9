"""prune_checkpoint end to end on files (method.md §5): saved checkpoints reload and reproduce the
pruned model's logits, the report accounts for every linear and file, runs are deterministic."""

import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from sinkprune.calibration import NoiseSpec, noised_batch, write_samples
from sinkprune.models import LLaDAConfig, LLaDAModelLM, get_adapter, load_model
from sinkprune.pruning import PruneSpec, prune_model
from sinkprune.pruning.io import load_calibration, load_sink_data, prune_checkpoint
from sinkprune.sink_norms import compute_sink_norms
from sinkprune.sinks import SCORES_SCHEMA

torch.set_num_threads(1)
V, T, N = 40, 16, 3
GRID = [(5, 0.5), (10, 1.0)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("prune")
    torch.manual_seed(0)
    cfg = LLaDAConfig(
        d_model=32,
        n_layers=2,
        n_heads=4,
        mlp_hidden_size=64,
        vocab_size=V,
        max_sequence_length=T,
        mask_token_id=V - 1,
    )
    base = root / "base"
    LLaDAModelLM(cfg).save_pretrained(base)
    (base / "tokenizer.json").write_text('{"fake": "tokenizer"}')
    (base / "train_metrics.json").write_text("{}")
    windows = np.random.default_rng(0).integers(0, V - 1, (N, T)).astype(np.int32)
    write_samples(windows, root / "samples.parquet")
    rng = np.random.default_rng(1)
    rows = []
    for s in range(N):
        om = {step: rng.uniform(0.2, 1.0, T) for step, _ in GRID}
        mean = np.mean([om[step] for step, _ in GRID], axis=0)
        for step, t in GRID:
            for j in range(T):
                rows.append(
                    dict(
                        sample=s,
                        step=step,
                        t=t,
                        position=j,
                        mass=1.0,
                        score=1 - om[step][j],
                        omega=om[step][j],
                        mean_score=1 - mean[j],
                        mean_omega=mean[j],
                    )
                )
    table = pa.Table.from_pandas(pd.DataFrame(rows), schema=SCORES_SCHEMA, preserve_index=False)
    pq.write_table(table, root / "scores.parquet")
    compute_sink_norms(
        base, root / "samples.parquet", root / "scores.parquet", root / "norms.safetensors",
        GRID, 1e-3, 0,
    )  # fmt: skip
    return root


def run(files, variant, out):
    return prune_checkpoint(
        files / "base",
        files / "samples.parquet",
        out,
        variant,
        scores_path=files / "scores.parquet",
        norms_path=files / "norms.safetensors",
        grid=GRID,
        eps=1e-3,
        noise_seed=0,
        blocksize=16,
        timing_path=out.parent / f"{variant}.timing.json",
    )


def test_sink_data_regenerates_x_t_and_pairs_omega(files):
    ad = get_adapter(load_model(files / "base"))
    calib = load_calibration(files / "samples.parquet")
    sd = load_sink_data(ad, calib, files / "scores.parquet", GRID, 1e-3, 0)
    scores = pq.read_table(files / "scores.parquet").to_pandas()
    assert sd.tokens.shape == (N * len(GRID), T)
    for k, (sid, step) in enumerate(sd.keys):
        t = dict(GRID)[step]
        x, _ = noised_batch([sid], calib.tokens[sid][None], step, t, NoiseSpec(1e-3, V - 1, 0))
        assert torch.equal(sd.tokens[k], x[0])
        ref = scores[(scores["sample"] == sid) & (scores["step"] == step)].sort_values("position")
        np.testing.assert_allclose(sd.omega[k].numpy(), ref["omega"].to_numpy(), rtol=1e-6)
    assert (sd.tokens[N:] == V - 1).all()  # t = 1 masks everything
    with pytest.raises(ValueError, match="scores.parquet: no"):
        load_sink_data(ad, calib, files / "scores.parquet", [(15, 0.7)], 1e-3, 0)


@pytest.mark.parametrize(
    "variant",
    [
        "dense",
        "wanda_unstructured_0.5",
        "sink_2of4_0.5",
        "sink_sgpt_unstructured_0.5",
        "sink_sp_structured_0.5",
    ],
)
def test_checkpoint_reloads_and_reproduces_logits(files, variant, tmp_path):
    out = tmp_path / variant
    report = run(files, variant, out)
    on_disk = json.loads((out / "prune_report.json").read_text())
    assert on_disk["variant"] == variant and on_disk["calibration"]["sample_ids"] == [0, 1, 2]
    for name, digest in on_disk["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    assert (out / "tokenizer.json").is_file() and not (out / "train_metrics.json").exists()
    # wall clock and memory live beside the log, so a rerun writes a byte-identical report
    assert not {"wall_seconds", "prune_seconds", "peak_memory"} & set(on_disk)
    timing = json.loads((tmp_path / f"{variant}.timing.json").read_text())
    assert timing["wall_seconds"] > 0 and timing["peak_memory"]["max_rss_mb"] > 0

    # the same pruning in memory; the reloaded checkpoint must give identical logits
    model = load_model(files / "base", dtype=torch.float32)
    ad = get_adapter(model)
    calib = load_calibration(files / "samples.parquet")
    method = report["method"]
    if method.startswith("sink"):
        calib.sinks = load_sink_data(ad, calib, files / "scores.parquet", GRID, 1e-3, 0)
    stype = report["sparsity_type"]
    prune_model(ad, calib, PruneSpec(method, report["target_sparsity"], stype, blocksize=16))
    again = load_model(out)
    x = calib.tokens
    with torch.no_grad():
        assert torch.equal(again(x).logits, model(x).logits)

    if variant == "dense":
        assert on_disk["sparsity"]["overall"] == 0.0
    elif stype == "structured":
        assert again.config.n_heads == 2 and again.config.mlp_hidden_size == 32
        p = on_disk["params"]
        assert p["linear_after"] == p["linear_before"] // 2
        assert p["total_after"] == sum(q.numel() for q in again.parameters())
    else:
        assert on_disk["sparsity"]["overall"] == 0.5
        assert set(on_disk["sparsity"]["per_linear"]) == {
            f"{i}.{n}" for i in range(2) for n in ad.linear_names
        }
        for key, frac in on_disk["zero_fraction"]["per_linear"].items():
            assert frac >= 0.5, key


def test_same_seed_same_masks(files, tmp_path):
    a = run(files, "sparsegpt_unstructured_0.5", tmp_path / "a")
    b = run(files, "sparsegpt_unstructured_0.5", tmp_path / "b")
    assert a["mask_sha256"] == b["mask_sha256"] and len(a["mask_sha256"]) == 14
    assert a["files"] == b["files"]
    c = run(files, "wanda_unstructured_0.5", tmp_path / "c")
    assert c["mask_sha256"] != a["mask_sha256"]
