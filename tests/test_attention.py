"""Attention-mass parquet on tiny random models (method.md §3, §6)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from sinkprune.attention import (
    MASS_SCHEMA,
    compute_attention_mass,
    iter_sample_frames,
    prefix_length,
)
from sinkprune.calibration import NoiseSpec, noised_batch, write_samples
from sinkprune.models import LLaDAConfig, LLaDAModelLM

L, H, T, N = 2, 2, 12, 3
GRID = [(5, 0.5), (10, 1.0)]
MASK = 50


def _setup(tmp_path, causal: bool):
    torch.manual_seed(0)
    cfg = LLaDAConfig(
        d_model=16,
        n_layers=L,
        n_heads=H,
        mlp_hidden_size=32,
        vocab_size=64,
        max_sequence_length=32,
        mask_token_id=MASK,
        causal=causal,
    )
    model = LLaDAModelLM(cfg)
    with torch.no_grad():  # sharper than the 0.02-std init, so attention is far from uniform
        for blk in model.blocks:
            blk.q_proj.weight.mul_(30.0)
            blk.k_proj.weight.mul_(30.0)
    model.save_pretrained(tmp_path / "model")
    windows = np.random.default_rng(0).integers(0, MASK, (N, T)).astype(np.int32)
    write_samples(windows, tmp_path / "samples.parquet")
    return windows


def _run(tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "mass.parquet"
    n = compute_attention_mass(
        tmp_path / "model",
        tmp_path / "samples.parquet",
        out,
        GRID,
        eps=1e-3,
        seed=0,
        chunk_size=5,
        device="cpu",
    )
    return out, n


def test_prefix_length():
    assert prefix_length(0.1, 64) == 7  # ceil(6.4)
    assert prefix_length(0.7, 10) == 7  # 0.7 * 10 = 7.000000000000001 in floats
    assert prefix_length(1.0, 64) == 64
    assert prefix_length(0.001, 64) == 1


def test_dlm_mass_parquet(tmp_path):
    windows = _setup(tmp_path, causal=False)
    out, n = _run(tmp_path)
    assert not (tmp_path / "mass.parquet.tmp").exists()
    table = pq.read_table(out)
    assert table.schema.equals(MASS_SCHEMA)
    assert n == table.num_rows == N * len(GRID) * L * T
    assert pq.ParquetFile(out).num_row_groups == N  # one row group per sample
    df = table.to_pandas()
    sums = df.groupby(["sample", "step", "layer"])["mass"].sum()
    assert np.allclose(sums.to_numpy(), H * T, rtol=1e-5)
    # token ids and mask flags are the shared x_t of calibration.noised_batch
    spec = NoiseSpec(1e-3, MASK, 0)
    for step, t in GRID:
        x, masked = noised_batch([0, 1, 2], torch.from_numpy(windows).long(), step, t, spec)
        for s in range(N):
            rows = df[(df["sample"] == s) & (df["step"] == step) & (df["layer"] == 0)]
            assert rows["position"].tolist() == list(range(T))
            assert rows["token_id"].tolist() == x[s].tolist()
            assert rows["masked"].tolist() == masked[s].tolist()
            assert rows["t"].iloc[0] == pytest.approx(t)
    assert df[df["step"] == 10]["masked"].all()  # t = 1: everything masked


def test_dlm_mass_matches_explicit_softmax(tmp_path):
    """Layer-0 mass equals column sums of an explicitly materialised softmax."""
    windows = _setup(tmp_path, causal=False)
    out, _ = _run(tmp_path)
    model = LLaDAModelLM.from_pretrained(tmp_path / "model").eval()
    x, _ = noised_batch([1], torch.from_numpy(windows[1:2]).long(), 5, 0.5, NoiseSpec(1e-3, MASK))
    blk = model.blocks[0]
    with torch.no_grad():
        h = blk.attn_norm(model.embed(x))
        q = blk.q_proj(h).view(1, T, H, -1).transpose(1, 2)
        k = blk.k_proj(h).view(1, T, H, -1).transpose(1, 2)
        d = q.shape[-1]
        inv = 1.0 / (model.config.rope_theta ** (torch.arange(0, d, 2).float() / d))
        ang = torch.outer(torch.arange(T).float(), inv)
        cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()

        def rot(v):
            a, b = v.chunk(2, -1)
            return v * cos + torch.cat([-b, a], -1) * sin

        att = (rot(q) @ rot(k).transpose(-1, -2) / math.sqrt(d)).softmax(-1)
        expect = att.sum(dim=(1, 2))[0].numpy()
    df = pq.read_table(out).to_pandas()
    got = df[(df["sample"] == 1) & (df["step"] == 5) & (df["layer"] == 0)]["mass"].to_numpy()
    assert expect.max() > 1.5 * expect.min()  # not the uniform case
    assert got == pytest.approx(expect, rel=1e-4)


def test_ar_prefix_steps(tmp_path):
    windows = _setup(tmp_path, causal=True)
    out, n = _run(tmp_path)
    lengths = [prefix_length(t, T) for _, t in GRID]  # 6, 12
    assert n == N * L * sum(lengths)
    df = pq.read_table(out).to_pandas()
    assert not df["masked"].any()
    for (step, _), n_k in zip(GRID, lengths, strict=True):
        part = df[df["step"] == step]
        assert part["position"].max() == n_k - 1
        sums = part.groupby(["sample", "layer"])["mass"].sum().to_numpy()
        assert np.allclose(sums, H * n_k, rtol=1e-5)
        rows = part[(part["sample"] == 2) & (part["layer"] == 1)]
        assert rows["token_id"].tolist() == windows[2, :n_k].tolist()
        # causal: query 0 attends only to key 0, so key 0 gets at least 1 per head
        assert (part[part["position"] == 0]["mass"] >= H - 1e-4).all()
    frames = list(iter_sample_frames(out, ["step", "mass"]))
    assert [f["sample"].iat[0] for f in frames] == [0, 1, 2]
    assert sum(len(f) for f in frames) == n


def test_dream_gqa_keeps_ends(tmp_path):
    """Dream family: GQA masses still sum to H·T per layer; first/last never masked (method.md §2)."""
    from sinkprune.models import DreamConfig, DreamModel

    torch.manual_seed(0)
    cfg = DreamConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=L,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=64,
        max_position_embeddings=32,
        mask_token_id=MASK,
    )
    DreamModel(cfg).save_pretrained(tmp_path / "model")
    windows = np.random.default_rng(1).integers(0, MASK, (N, T)).astype(np.int32)
    write_samples(windows, tmp_path / "samples.parquet")
    out, n = _run(tmp_path)
    assert n == N * len(GRID) * L * T
    df = pq.read_table(out).to_pandas()
    sums = df.groupby(["sample", "step", "layer"])["mass"].sum().to_numpy()
    assert np.allclose(sums, 4 * T, rtol=1e-5)
    at1 = df[df["step"] == 10]
    assert not at1[at1["position"].isin([0, T - 1])]["masked"].any()
    assert at1[at1["position"].between(1, T - 2)]["masked"].all()
