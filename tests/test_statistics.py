"""Paired statistics: bootstrap CI against closed forms, pairing by id, weights, the mark."""

import math

import numpy as np
import pytest

from sinkprune.statistics import (
    align,
    normal_delta,
    normal_quantile,
    paired_delta,
    paired_delta_groups,
    ratio_stderr,
)


def as_items(values, ids=None):
    ids = range(len(values)) if ids is None else ids
    return {i: float(v) for i, v in zip(ids, values, strict=True)}


def test_constant_difference_has_a_degenerate_ci():
    a = as_items(np.arange(50) % 3)
    b = {k: v + 0.25 for k, v in a.items()}
    d = paired_delta(a, b)
    assert d.delta == pytest.approx(0.25) and d.lo == pytest.approx(0.25)
    assert d.hi == pytest.approx(0.25) and d.se == pytest.approx(0, abs=1e-12)
    assert d.significant and d.mark == "*" and d.n == 50


def test_bootstrap_matches_the_closed_form_for_a_binary_metric():
    """Two variants right/wrong on n items: d_i ∈ {−1, 0, 1}. The bootstrap distribution of the
    mean has variance var_pop(d)/n exactly; its 95% interval tends to mean ± 1.96·that."""
    rng = np.random.default_rng(1)
    n = 800
    a = rng.random(n) < 0.7
    b = np.where(rng.random(n) < 0.8, a, ~a)  # flips 20% of the items
    d = b.astype(float) - a.astype(float)
    se = math.sqrt(d.var() / n)  # population variance: what the bootstrap resamples from
    got = paired_delta(as_items(a), as_items(b), n_boot=40_000, seed=3)
    assert got.delta == pytest.approx(d.mean())
    assert got.se == pytest.approx(se, rel=0.03)
    assert got.lo == pytest.approx(d.mean() - 1.959964 * se, abs=0.15 * se)
    assert got.hi == pytest.approx(d.mean() + 1.959964 * se, abs=0.15 * se)
    closed = normal_delta(as_items(a), as_items(b))
    assert closed.se == pytest.approx(d.std(ddof=1) / math.sqrt(n))
    assert closed.hi - closed.delta == pytest.approx(1.959964 * closed.se, rel=1e-5)


def test_pairing_follows_ids_not_order():
    rng = np.random.default_rng(0)
    ids = [f"task/{i}" for i in range(40)]
    a = as_items(rng.normal(size=40), ids)
    b = {k: v + rng.normal(0.3, 0.1) for k, v in a.items()}
    reordered = {k: b[k] for k in reversed(ids)}
    assert paired_delta(a, reordered) == paired_delta(a, b)
    # pairing by position on a shuffled copy would see the between-item spread (sd ≈ 1), not
    # the small paired one (sd 0.1): the CI stays narrow only if items are matched by id
    d = paired_delta(a, reordered)
    assert d.hi - d.lo < 0.1 and d.significant
    with pytest.raises(ValueError, match="same items"):
        paired_delta(a, {k: v for k, v in b.items() if k != "task/3"})
    ids_, va, vb = align(a, reordered)
    assert [b[k] for k in ids_] == list(vb) and [a[k] for k in ids_] == list(va)


def test_ci_including_zero_is_not_marked():
    a = as_items([0, 1, 0, 1, 1, 0, 1, 0])
    b = as_items([1, 0, 0, 1, 1, 0, 0, 1])
    d = paired_delta(a, b)
    assert d.lo < 0 < d.hi and not d.significant and d.mark == ""


def test_weighted_delta_is_the_ratio_of_sums():
    """Token-level mean CE over windows: Σ(b_sum − a_sum)/Σ n, with per-window means weighted
    by the masked counts."""
    n_masked = {0: 3, 1: 10, 2: 7, 3: 1}
    a_sum = {0: 6.0, 1: 30.0, 2: 14.0, 3: 5.0}
    b_sum = {0: 9.0, 1: 40.0, 2: 14.0, 3: 4.0}
    a = {k: a_sum[k] / n_masked[k] for k in n_masked}
    b = {k: b_sum[k] / n_masked[k] for k in n_masked}
    d = paired_delta(a, b, weights=n_masked)
    assert d.delta == pytest.approx((sum(b_sum.values()) - sum(a_sum.values())) / 21)


def test_groups_average_their_deltas_and_resample_each_group():
    a1, b1 = as_items([0] * 30), as_items([1] * 30)  # +1 in every item
    a2, b2 = as_items([0] * 10), as_items([0] * 10)  # no change
    d = paired_delta_groups([(a1, b1, None), (a2, b2, None)])
    assert d.delta == pytest.approx(0.5)
    assert d.lo == pytest.approx(0.5) and d.hi == pytest.approx(0.5)  # no within-group spread
    assert d.n == 40


def test_seeded_and_scaled():
    rng = np.random.default_rng(5)
    a, b = as_items(rng.random(30)), as_items(rng.random(30))
    assert paired_delta(a, b, seed=1) == paired_delta(a, b, seed=1)
    pts = paired_delta(a, b).scaled(100)
    raw = paired_delta(a, b)
    assert pts.delta == pytest.approx(100 * raw.delta) and pts.lo == pytest.approx(100 * raw.lo)
    flipped = raw.scaled(-1)
    assert flipped.lo == pytest.approx(-raw.hi) and flipped.hi == pytest.approx(-raw.lo)


def test_normal_quantile_and_ratio_stderr():
    assert normal_quantile(0.975) == pytest.approx(1.959963985, abs=1e-8)
    assert normal_quantile(0.5) == pytest.approx(0, abs=1e-12)
    # equal counts: the ratio stderr is the stderr of the per-unit means
    sums, counts = [2.0, 4.0, 9.0, 1.0], [2, 2, 2, 2]
    means = np.array(sums) / 2
    assert ratio_stderr(sums, counts) == pytest.approx(means.std(ddof=1) / 2)
    assert ratio_stderr([3.0], [2]) == 0.0


def test_bootstrap_of_continuous_values_matches_the_closed_form():
    """Many distinct values take the index-resampling path: same closed form as above."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=300)
    b = a + rng.normal(0.2, 1.0, size=300)
    d = b - a
    got = paired_delta(as_items(a), as_items(b), n_boot=20_000)
    assert got.delta == pytest.approx(d.mean())
    assert got.se == pytest.approx(math.sqrt(d.var() / 300), rel=0.03)
