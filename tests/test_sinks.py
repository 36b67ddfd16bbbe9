"""Sink scores, loaders and statistics on hand-made mass arrays (method.md §4, §6)."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from sinkprune.attention import MASS_SCHEMA, mass_table
from sinkprune.sinks import (
    METRICS,
    compute_sink_scores,
    compute_sink_stats,
    load_mean_omega,
    load_omega,
    sink_scores,
    write_sink_properties,
)


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_soft_scores_by_hand():
    m = [10.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 3.0]
    n = len(m)
    mu = sum(m) / n
    sigma = math.sqrt(sum((x - mu) ** 2 for x in m) / n)
    expect = [_sigmoid(5.0 * (x - (mu + 2.0 * sigma))) for x in m]
    got = sink_scores(np.array(m), "soft", k=2.0, alpha=5.0)
    assert got == pytest.approx(expect, rel=1e-9, abs=1e-12)
    # a different k / alpha
    expect = [_sigmoid(0.5 * (x - (mu + 1.0 * sigma))) for x in m]
    assert sink_scores(np.array(m), "soft", k=1.0, alpha=0.5) == pytest.approx(expect)


def test_binary_scores_by_hand():
    m = [4.0, 1.0, 1.0, 2.0]
    # mean of the others: (4-4)... j=0 -> (1+1+2)/3=1.333 ; j=3 -> (4+1+1)/3=2.0
    assert sink_scores(np.array(m), "binary", eps=0.0).tolist() == [1, 0, 0, 0]
    assert sink_scores(np.array([3.0, 1.0, 1.0, 2.5]), "binary", eps=0.0).tolist() == [1, 0, 0, 1]
    assert sink_scores(np.array([3.0, 1.0, 1.0, 2.5]), "binary", eps=1.0).tolist() == [1, 0, 0, 0]
    with pytest.raises(ValueError, match="sinks.rule"):
        sink_scores(np.array(m), "hard")


def _write_mass(path, masses, steps, causal_lengths=None):
    """masses[sample][step_index] = array (L, n)."""
    with pq.ParquetWriter(path, MASS_SCHEMA) as w:
        for sid, per_step in enumerate(masses):
            for (step, t), m in zip(steps, per_step, strict=True):
                n = m.shape[1]
                w.write_table(
                    mass_table(sid, step, t, np.arange(n), np.zeros(n, bool), np.asarray(m))
                )


def test_scores_parquet_and_loaders(tmp_path):
    rng = np.random.default_rng(0)
    steps = [(5, 0.5), (10, 1.0)]
    masses = [[rng.random((3, 6)) for _ in steps] for _ in range(2)]
    masses[0][0][:, 2] += 5.0  # a sink at position 2
    _write_mass(tmp_path / "mass.parquet", masses, steps)
    out = tmp_path / "scores.parquet"
    n = compute_sink_scores(tmp_path / "mass.parquet", out, "soft", k=2.0, alpha=5.0)
    assert n == 2 * 2 * 6
    df = pq.read_table(out).to_pandas()
    assert list(df.columns) == [
        "sample",
        "step",
        "t",
        "position",
        "mass",
        "score",
        "omega",
        "mean_score",
        "mean_omega",
    ]
    omega = load_omega(out)
    mean_omega = load_mean_omega(out)
    assert sorted(omega) == [(0, 5), (0, 10), (1, 5), (1, 10)]
    for s in range(2):
        scores = []
        for i, (step, _) in enumerate(steps):
            m = masses[s][i].sum(axis=0)
            mu, sd = m.mean(), m.std()
            sc = np.array([_sigmoid(5.0 * (x - mu - 2.0 * sd)) for x in m])
            scores.append(sc)
            assert omega[(s, step)] == pytest.approx(1 - sc, abs=1e-6)
        assert mean_omega[s] == pytest.approx(1 - np.mean(scores, axis=0), abs=1e-6)
    assert omega[(0, 5)][2] < 0.5  # the planted sink is down-weighted


def _scores_frame_path(tmp_path, dominant, T=10, steps=None):
    """Mass per (sample, step) with one sink at dominant[sample][step]: 1 elsewhere, 50 there."""
    steps = steps or [(i + 1, (i + 1) / len(dominant[0])) for i in range(len(dominant[0]))]
    masses = []
    for per_sample in dominant:
        rows = []
        for pos in per_sample:
            m = np.ones((1, T))
            m[0, pos] = 50.0
            rows.append(m)
        masses.append(rows)
    _write_mass(tmp_path / "mass.parquet", masses, steps)
    compute_sink_scores(tmp_path / "mass.parquet", tmp_path / "scores.parquet")
    return tmp_path / "scores.parquet"


def test_stats_fixed_sink(tmp_path):
    T = 10
    path = _scores_frame_path(tmp_path, [[0, 0, 0, 0], [0, 0, 0, 0]], T)
    st = compute_sink_stats(path, tmp_path / "stats.json", "m", "ar")
    met = st["metrics"]
    assert met["dominant_pos_var"]["mean"] == 0.0
    assert met["dominant_at_zero"]["mean"] == 1.0
    assert met["sink_jaccard"]["mean"] == 1.0
    share = 50 / (50 + 9)
    assert met["top1_share"]["mean"] == pytest.approx(share)
    assert met["top1pct_share"]["mean"] == pytest.approx(share)  # ceil(1% of 10) = 1 position
    p = np.array([50] + [1] * 9) / 59
    assert met["entropy_norm"]["mean"] == pytest.approx(-(p * np.log(p)).sum() / np.log(10))
    assert json.loads((tmp_path / "stats.json").read_text())["kind"] == "ar"


def test_stats_moving_sink(tmp_path):
    T = 10
    dom = [[0, 2, 4, 6], [1, 1, 1, 1]]
    path = _scores_frame_path(tmp_path, dom, T)
    met = compute_sink_stats(path, tmp_path / "stats.json", "m", "dlm")["metrics"]
    var0 = np.var(np.array(dom[0]) / T)  # population variance over steps = 0.05
    assert met["dominant_pos_var"]["per_sample"] == pytest.approx([var0, 0.0])
    assert met["dominant_pos_var"]["mean"] == pytest.approx(var0 / 2)
    assert met["dominant_pos_var"]["std"] == pytest.approx(np.std([var0, 0.0], ddof=1))
    # the sink moves every step: disjoint single-position sets; fixed sink: identical sets
    assert met["sink_jaccard"]["per_sample"] == pytest.approx([0.0, 1.0])
    assert met["dominant_at_zero"]["per_sample"] == pytest.approx([0.25, 0.0])


def test_stats_ar_prefix_steps(tmp_path):
    """AR steps are prefixes of growing length; the variance uses the full window T = 8."""
    steps = [(1, 0.5), (2, 1.0)]
    m1 = np.ones((2, 4))
    m1[:, 0] = 9
    m2 = np.ones((2, 8))
    m2[:, 3] = 9
    _write_mass(tmp_path / "mass.parquet", [[m1, m2]], steps)
    compute_sink_scores(tmp_path / "mass.parquet", tmp_path / "scores.parquet")
    st = compute_sink_stats(tmp_path / "scores.parquet", tmp_path / "s.json", "ar1", "ar")
    assert st["seqlen"] == 8
    assert st["metrics"]["dominant_pos_var"]["mean"] == pytest.approx(np.var([0, 3 / 8]))
    om = load_omega(tmp_path / "scores.parquet")
    assert om[(0, 1)].shape == (4,) and om[(0, 2)].shape == (8,)


def test_sink_properties_table(tmp_path):
    paths = []
    for name, kind, dom in [("d", "dlm", [[0, 3], [5, 5]]), ("a", "ar", [[0, 0], [0, 0]])]:
        d = tmp_path / name
        d.mkdir()
        sp = _scores_frame_path(d, dom, 8)
        compute_sink_stats(sp, d / "stats.json", name, kind)
        paths.append(d / "stats.json")
    csv = write_sink_properties(paths, tmp_path / "t.md", tmp_path / "t.csv")
    assert list(csv["metric"]) == list(METRICS)
    assert list(csv.columns[2:]) == ["a mean", "a std", "d mean", "d std"]  # AR first
    md = (tmp_path / "t.md").read_text()
    assert "a (AR)" in md and "d (DLM)" in md and md.index("a (AR)") < md.index("d (DLM)")
    assert len([ln for ln in md.splitlines() if ln.startswith("| ")]) == 1 + len(METRICS)


def test_binary_rule_in_parquet(tmp_path):
    m = np.array([[1.0, 6.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0]])  # layers sum: [2, 7, 2, 3]
    _write_mass(tmp_path / "mass.parquet", [[m]], [(5, 1.0)])
    compute_sink_scores(tmp_path / "mass.parquet", tmp_path / "s.parquet", "binary", binary_eps=0.5)
    # others' means: j=1 -> 7/3 (7 > 2.83: sink); j=3 -> 11/3 (3 < 4.17: not)
    assert load_omega(tmp_path / "s.parquet")[(0, 5)].tolist() == [1.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="sinks.rule"):
        compute_sink_scores(tmp_path / "mass.parquet", tmp_path / "x.parquet", "hard")
