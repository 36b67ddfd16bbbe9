"""Sink statistics once per model (rule sink_norms, sinkprune.sink_norms): the stored norms equal a
numpy computation written here, and masks pruned from the file are bit-identical to recomputing
the statistics in the prune job; the forward counter sees the forwards each path runs."""

import copy
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file, save_file

from sinkprune.bench._counter import ForwardCounter
from sinkprune.calibration import write_samples
from sinkprune.config import NORM_METHODS, parse_variant
from sinkprune.models import LLaDAConfig, LLaDAModelLM, get_adapter, load_model
from sinkprune.pruning import METHODS, PruneSpec, prune_model
from sinkprune.pruning.driver import batched, dense_statistics
from sinkprune.pruning.io import load_calibration, load_sink_data, prune_checkpoint
from sinkprune.pruning.stats import SummedNorm
from sinkprune.sink_norms import NORMS_FORMAT, compute_sink_norms, load_norms, read_metadata
from sinkprune.sinks import SCORES_SCHEMA

torch.set_num_threads(1)
V, T, N = 40, 16, 5
GRID = [(5, 0.5), (10, 1.0), (3, 0.3)]
LINEARS = ("q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out")


def base_config(n_layers=2):
    return LLaDAConfig(
        d_model=32,
        n_layers=n_layers,
        n_heads=4,
        mlp_hidden_size=64,
        vocab_size=V,
        max_sequence_length=T,
        mask_token_id=V - 1,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("norms")
    torch.manual_seed(0)
    LLaDAModelLM(base_config()).save_pretrained(root / "base")
    windows = np.random.default_rng(0).integers(0, V - 1, (N, T)).astype(np.int32)
    write_samples(windows, root / "samples.parquet")
    rng = np.random.default_rng(1)
    rows = []
    for s in range(N):
        om = {step: rng.uniform(0.0, 1.0, T) for step, _ in GRID}
        mean = np.mean(list(om.values()), axis=0)
        for step, t in GRID:
            for j in range(T):
                rows.append(dict(sample=s, step=step, t=t, position=j, mass=1.0,
                                 score=1 - om[step][j], omega=om[step][j],
                                 mean_score=1 - mean[j], mean_omega=mean[j]))  # fmt: skip
    table = pa.Table.from_pandas(pd.DataFrame(rows), schema=SCORES_SCHEMA, preserve_index=False)
    pq.write_table(table, root / "scores.parquet")
    with ForwardCounter() as counter:
        meta = compute_sink_norms(
            root / "base", root / "samples.parquet", root / "scores.parquet",
            root / "norms.safetensors", GRID, 1e-3, 0, batch_size=4,
        )  # fmt: skip
    root.joinpath("counted.json").write_text(json.dumps({"rows": counter.rows}))
    assert meta["sample_ids"] == list(range(N))
    return root


def prune_file(files, variant, out, **kw):
    return prune_checkpoint(
        files / "base", files / "samples.parquet", out, variant,
        norms_path=files / "norms.safetensors", batch_size=4, **kw,
    )  # fmt: skip


def recompute(files, variant):
    """Today's path: the prune job runs the dense model over every x_t itself."""
    ad = get_adapter(load_model(files / "base", dtype=torch.float32))
    calib = load_calibration(files / "samples.parquet")
    calib.sinks = load_sink_data(ad, calib, files / "scores.parquet", GRID, 1e-3, 0)
    v = parse_variant(variant)
    return prune_model(ad, calib, PruneSpec(v.method, v.sparsity, v.sparsity_type, batch_size=4))


# ---------------------------------------------------------------- values ---
@torch.no_grad()
def reference_norms(files):
    """{set: {"i.linear": a}}: a_c = Σ_x ‖(ωX)_c‖₂ (sink), Σ_x ‖X_c‖₂ (none) and the sums of the
    squared norms (sink_sq, none_sq) in float64, X from a plain forward of each noised x_t one at
    a time, captured by hooks."""
    model = load_model(files / "base", dtype=torch.float32)
    ad = get_adapter(model)
    calib = load_calibration(files / "samples.parquet")
    sinks = load_sink_data(ad, calib, files / "scores.parquet", GRID, 1e-3, 0)
    seen, handles = {}, []
    for i in range(ad.n_layers):
        for name, lin in ad.linears(i).items():
            hook = lambda m, a, o, key=f"{i}.{name}": seen.setdefault(key, []).append(a[0])  # noqa: E731
            handles.append(lin.register_forward_hook(hook))
    for x in sinks.tokens:
        model(x[None])
    for h in handles:
        h.remove()
    out = {"sink": {}, "none": {}, "sink_sq": {}, "none_sq": {}}
    w = sinks.omega.double().numpy()
    for key, xs in seen.items():
        X = torch.cat(xs).double().numpy()  # (K, T, d)
        sq = {"sink": ((X * w[:, :, None]) ** 2).sum(axis=1), "none": (X**2).sum(axis=1)}
        for weighting, per_input in sq.items():
            out[weighting][key] = np.sqrt(per_input).sum(axis=0)
            out[f"{weighting}_sq"][key] = per_input.sum(axis=0)
    return out


def test_file_layout_and_values_match_reference(files):
    tensors = load_file(files / "norms.safetensors")
    assert len(tensors) == 4 * 2 * len(LINEARS)  # 4 sets x 2 blocks x 7 linears
    ref = reference_norms(files)
    for stored in ("sink", "none", "sink_sq", "none_sq"):
        for key, a in ref[stored].items():
            got = tensors[f"{stored}/{key}"]
            assert got.dtype == torch.float32
            np.testing.assert_allclose(got.double().numpy(), a, rtol=1e-5, err_msg=key)
    # ω in [0, 1) strictly lowers the norm of every column
    assert all((tensors[f"sink/{k}"] < tensors[f"none/{k}"]).all() for k in ref["sink"])
    meta = read_metadata(files / "norms.safetensors")
    assert meta["format"] == NORMS_FORMAT and meta["n_inputs"] == N * len(GRID)
    assert meta["grid"] == [[s, t] for s, t in GRID]
    assert meta["stored"] == ["sink", "none", "sink_sq", "none_sq"]
    # the `rms` statistic of the file is Wanda's sqrt(mean over inputs of ‖X_c‖²)
    widths = [{n: 32 if n != "ff_out" else 64 for n in LINEARS}] * 2
    loaded = load_norms(files / "norms.safetensors", 2, widths)
    for key, sq in ref["none_sq"].items():
        i, name = key.split(".", 1)
        rms = loaded.block(int(i), "none", "rms")[name].double().numpy()
        np.testing.assert_allclose(rms, np.sqrt(sq / (N * len(GRID))), rtol=1e-5, err_msg=key)


def test_workflow_names_the_norms_format():
    """rule sink_norms tracks the layout version as a param (so a new layout reruns it)."""
    from pathlib import Path

    common = (Path(__file__).resolve().parents[1] / "workflow/rules/common.smk").read_text()
    assert f'NORMS_FORMAT = "{NORMS_FORMAT}"' in common


def test_stored_norms_are_bit_identical_to_the_summed_norm_collector(files):
    """The set collector adds nothing to the `sink` accumulator: exactly SummedNorm's value."""
    ad = get_adapter(load_model(files / "base", dtype=torch.float32))
    calib = load_calibration(files / "samples.parquet")
    sinks = load_sink_data(ad, calib, files / "scores.parquet", GRID, 1e-3, 0)
    stats = dense_statistics(
        ad, batched(sinks.tokens, sinks.omega, 4), lambda lin: SummedNorm(lin.in_features)
    )
    tensors = load_file(files / "norms.safetensors")
    for i, block in enumerate(stats):
        for name, collector in block.items():
            assert torch.equal(tensors[f"sink/{i}.{name}"], collector.value), (i, name)


# ----------------------------------------------------------------- masks ---
@pytest.mark.parametrize(
    "variant",
    [
        "sink_unstructured_0.5",
        "sink_unstructured_0.25",
        "sink_unstructured_0.75",
        "sink_2of4_0.5",
        "sink_4of8_0.5",
        "sink_sp_structured_0.3",
        "sink_sp_structured_0.5",
    ],
)
def test_cached_norms_give_the_same_masks_as_recomputation(files, variant, tmp_path):
    with ForwardCounter() as counter:
        report = prune_file(files, variant, tmp_path / variant)
    assert counter.calls == 0  # a mask selection, no forward
    assert report["calibration"]["noised_inputs"] == N * len(GRID)
    assert report["calibration"]["sink_norms"].endswith("norms.safetensors")
    res = recompute(files, variant)
    if parse_variant(variant).sparsity_type == "structured":
        removed = report["structured"]["removed_kv_groups"]
        assert removed == {str(i): r["heads"] for i, r in res.removed.items()}
        channels = report["structured"]["removed_channels"]
        assert channels == {str(i): r["channels"] for i, r in res.removed.items()}
        assert any(r["channels"] for r in res.removed.values())
    else:
        assert report["mask_sha256"] == res.digests and len(res.digests) == 2 * len(LINEARS)


def test_norm_methods_are_the_methods_that_read_norms():
    assert {name for name, cls in METHODS.items() if cls.uses_norms} == NORM_METHODS


# ------------------------------------------------------------- forwards ---
def test_forward_counter_counts_windows():
    model = LLaDAModelLM(base_config(n_layers=3)).eval()
    ad = get_adapter(model)
    x = torch.randint(0, V, (3, T))
    with ForwardCounter() as c, torch.no_grad():
        model(x)  # 3 windows through 3 blocks
        ad.attention_mass(x[:2])  # 2 more
        h = ad.embed(x[:1])
        for i in range(2):  # one window through 2 of the 3 blocks: 2/3 of a forward
            h = ad.block_forward(i, h)
    assert (c.calls, c.rows, c.tokens) == (3 + 3 + 2, 9 + 6 + 2, (9 + 6 + 2) * T)
    assert c.forwards(ad.n_layers) == pytest.approx(5 + 2 / 3)
    with torch.no_grad():
        model(x)  # outside the context: not counted, hook removed
    assert c.rows == 17


def test_forwards_per_stage_counted(files, tmp_path):
    counted = json.loads((files / "counted.json").read_text())
    assert counted["rows"] / 2 == N * len(GRID)  # sink_norms: one pass per (sample, step)
    with ForwardCounter() as c:
        prune_checkpoint(files / "base", files / "samples.parquet", tmp_path / "w",
                         "wanda_unstructured_0.5")  # fmt: skip
    assert c.forwards(2) == 2 * N  # sequential: each block sees N windows for statistics + N out


# --------------------------------------------------------------- errors ---
def test_sink_needs_norms_file(files, tmp_path):
    with pytest.raises(ValueError, match="norms.safetensors"):
        prune_checkpoint(files / "base", files / "samples.parquet", tmp_path / "x",
                         "sink_unstructured_0.5", scores_path=files / "scores.parquet")  # fmt: skip


def test_loader_refuses_other_models_and_files(files, tmp_path):
    path = files / "norms.safetensors"
    widths = {name: (64 if name == "ff_out" else 32) for name in LINEARS}
    load_norms(path, 2, widths)  # fits
    with pytest.raises(ValueError, match="blocks"):
        load_norms(path, 1, widths)
    with pytest.raises(ValueError, match="no tensor"):
        load_norms(path, 3, widths)
    with pytest.raises(ValueError, match="shape"):
        load_norms(path, 2, {**widths, "ff_out": 32})
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other))
    with pytest.raises(ValueError, match="not a sink norms file"):
        read_metadata(other)


def test_norms_from_other_samples_are_refused(files, tmp_path):
    windows = np.random.default_rng(9).integers(0, V - 1, (N - 1, T)).astype(np.int32)
    write_samples(windows, tmp_path / "samples.parquet")
    with pytest.raises(ValueError, match="rerun rule sink_norms"):
        prune_checkpoint(files / "base", tmp_path / "samples.parquet", tmp_path / "x",
                         "sink_unstructured_0.5", norms_path=files / "norms.safetensors")  # fmt: skip


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt", "sink", "sink_sgpt",
                                    "wanda_sp", "sink_sp"])  # fmt: skip
def test_resources_forwards_equal_the_counted_forwards(files, method, tmp_path):
    """sinkprune.resources sizes GPU jobs by forwards per job: they must be what a job runs."""
    from sinkprune import resources as res

    stype = "structured" if method.endswith("_sp") else "unstructured"
    variant = f"{method}_{stype}_{0.3 if stype == 'structured' else 0.5}"
    with ForwardCounter() as c:
        prune_file(files, variant, tmp_path / variant, scores_path=files / "scores.parquet",
                   grid=GRID, eps=1e-3, noise_seed=0)  # fmt: skip
    job = {"nsamples": N, "timesteps": len(GRID), "method": method}
    assert c.forwards(2) == res.forwards("prune", **job)
    counted = json.loads((files / "counted.json").read_text())["rows"] / 2
    assert counted == res.forwards("sink_norms", **job)


def test_dream_norms_roundtrip_and_gqa_sink_sp(tmp_path):
    """Dream names (self_attn.q_proj, …) survive the file; sink_sp from the file = recomputed."""
    from sinkprune.models import DreamConfig, DreamModel
    from sinkprune.pruning import CalibrationData, SinkData
    from sinkprune.pruning.sink import sink_norms
    from sinkprune.sink_norms import save_norms

    torch.manual_seed(0)
    cfg = DreamConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, vocab_size=V,
                      mask_token_id=V - 1)  # fmt: skip
    dense = DreamModel(cfg).eval()
    x = torch.randint(0, V - 1, (3, T), generator=torch.Generator().manual_seed(1))
    noised = x.masked_fill(
        torch.rand(x.shape, generator=torch.Generator().manual_seed(2)) < 0.5, V - 1
    )
    omega = torch.rand(x.shape, generator=torch.Generator().manual_seed(3))
    sinks = SinkData(noised, omega, [], torch.ones(x.shape))
    ad = get_adapter(dense)
    with torch.no_grad():
        norms = sink_norms(ad, sinks, batch_size=2)
    save_norms(tmp_path / "n.safetensors", norms, {"sample_ids": [0, 1, 2]})
    widths = [{n: lin.in_features for n, lin in ad.linears(i).items()} for i in range(2)]
    loaded = load_norms(tmp_path / "n.safetensors", 2, widths)
    for w in ("sink", "none"):
        for norm in ("summed", "rms"):
            for i in range(2):
                for name, vec in norms.block(i, w, norm).items():
                    assert torch.equal(loaded.block(i, w, norm)[name], vec), (w, norm, i, name)
    spec = PruneSpec("sink_sp", 0.5, "structured")
    from_file = prune_model(
        get_adapter(copy.deepcopy(dense)), CalibrationData([0, 1, 2], x, None, loaded), spec
    )
    recomputed = prune_model(
        get_adapter(copy.deepcopy(dense)), CalibrationData([0, 1, 2], x, sinks), spec
    )
    assert from_file.removed == recomputed.removed and from_file.removed[0]["heads"]


def test_norms_file_is_reproducible(files, tmp_path):
    again = tmp_path / "norms.safetensors"
    compute_sink_norms(
        files / "base", files / "samples.parquet", files / "scores.parquet", again,
        GRID, 1e-3, 0, batch_size=4,
    )  # fmt: skip
    assert again.read_bytes() == (files / "norms.safetensors").read_bytes()
