"""Paired comparisons of two variants over the same items (tables, claims, ablations).

Variant B is compared with variant A on the items both were scored on (lm-eval documents,
held-out windows). The item-level differences d_i = b_i − a_i cancel what the two share (how hard
an item is), so the paired CI of the mean difference is much narrower than one built from two
independent stderrs. `paired_delta` is generic: any two variants, any per-item metric, items
matched by id, optionally weighted (a token-level mean CE over windows is Σ b_i − Σ a_i over
Σ n_i, a weighted mean of per-window differences with weights n_i).

The CI is a percentile bootstrap over items (seeded, so tables are byte-reproducible). Several
groups (tasks) combine into the mean of their per-group deltas, each group resampled on its own
(a stratified bootstrap: the CI of Δ Avg over tasks). `normal_delta` is the closed-form
counterpart, mean ± z·sd/√n, for checks and for quick use.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
N_BOOT = 10_000
SIGNIFICANT_MARK = "*"

Items = Mapping[Hashable, float]


@dataclass(frozen=True)
class PairedDelta:
    """B − A: the point estimate, its CI at `level`, the bootstrap standard error, the items."""

    delta: float
    lo: float
    hi: float
    se: float
    n: int
    level: float = LEVEL

    @property
    def significant(self) -> bool:
        """The CI excludes 0."""
        return self.lo > 0 or self.hi < 0

    @property
    def mark(self) -> str:
        return SIGNIFICANT_MARK if self.significant else ""

    def scaled(self, factor: float) -> PairedDelta:
        """The same comparison in other units (e.g. ×100 for percentage points)."""
        lo, hi = sorted((self.lo * factor, self.hi * factor))
        return PairedDelta(self.delta * factor, lo, hi, self.se * abs(factor), self.n, self.level)


def align(a: Items, b: Items, what: str = "items") -> tuple[list, np.ndarray, np.ndarray]:
    """(ids, a values, b values) over the ids of `a` in sorted order. Raises ValueError when the
    two variants were not scored on the same ids (a pairing would silently drop items)."""
    only_a, only_b = set(a) - set(b), set(b) - set(a)
    if only_a or only_b:
        raise ValueError(
            f"paired comparison needs the same {what} in both variants: "
            f"{len(only_a)} only in A (e.g. {sorted(map(str, only_a))[:3]}), "
            f"{len(only_b)} only in B (e.g. {sorted(map(str, only_b))[:3]})"
        )
    if not a:
        raise ValueError(f"paired comparison of zero {what}")
    ids = sorted(a, key=lambda k: (str(type(k)), k))
    return ids, np.array([a[k] for k in ids], float), np.array([b[k] for k in ids], float)


def _weights(w: Items | None, ids: list) -> np.ndarray:
    if w is None:
        return np.ones(len(ids))
    missing = [k for k in ids if k not in w]
    if missing:
        raise ValueError(f"no weight for items {missing[:3]}")
    out = np.array([w[k] for k in ids], float)
    if (out < 0).any() or out.sum() <= 0:
        raise ValueError("weights must be >= 0 with a positive sum")
    return out


def paired_delta(
    a: Items,
    b: Items,
    weights: Items | None = None,
    *,
    level: float = LEVEL,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> PairedDelta:
    """Weighted mean of b_i − a_i over the shared ids with a paired percentile-bootstrap CI."""
    return paired_delta_groups([(a, b, weights)], level=level, n_boot=n_boot, seed=seed)


def paired_delta_groups(
    groups: Sequence[tuple[Items, Items, Items | None]],
    *,
    level: float = LEVEL,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> PairedDelta:
    """Mean over groups of each group's weighted mean difference (B − A), with a stratified
    paired bootstrap: every resample redraws each group's items with replacement."""
    if not groups:
        raise ValueError("paired comparison of zero groups")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    point, boots, n = 0.0, np.zeros(n_boot), 0
    for a, b, w in groups:
        ids, va, vb = align(a, b)
        wt = _weights(w, ids)
        wd = wt * (vb - va)
        point += wd.sum() / wt.sum()
        boots += _bootstrap_ratio(wd, wt, n_boot, rng)
        n += len(ids)
    k = len(groups)
    point, boots = point / k, boots / k
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return PairedDelta(float(point), float(lo), float(hi), float(boots.std()), n, level)


def _bootstrap_ratio(wd: np.ndarray, wt: np.ndarray, n_boot: int, rng) -> np.ndarray:
    """`n_boot` values of Σ wd / Σ wt over resamples of the items with replacement, in chunks
    that keep memory small.

    Items with equal (wd, wt) are interchangeable, so where few distinct pairs exist (3 for a
    0/1 metric) a resample is a multinomial draw of counts over them; otherwise item indices
    are drawn directly."""
    n = len(wd)
    uniq, counts = np.unique(np.stack([wd, wt], 1), axis=0, return_counts=True)
    out = np.empty(n_boot)
    by_counts = 20 * len(uniq) < n
    chunk = max(1, 4_000_000 // (len(uniq) if by_counts else n))
    for lo in range(0, n_boot, chunk):
        size = min(chunk, n_boot - lo)
        if by_counts:
            draws = rng.multinomial(n, counts / n, size=size)
            num, den = draws @ uniq[:, 0], draws @ uniq[:, 1]
        else:
            idx = rng.integers(0, n, size=(size, n))
            num, den = wd[idx].sum(1), wt[idx].sum(1)
        out[lo : lo + size] = num / np.maximum(den, 1e-300)
    return out


def normal_delta(a: Items, b: Items, *, level: float = LEVEL) -> PairedDelta:
    """Closed-form paired CI: mean(d) ± z·sd(d)/√n with the sample sd (ddof = 1)."""
    ids, va, vb = align(a, b)
    d = vb - va
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
    z = normal_quantile((1 + level) / 2)
    return PairedDelta(float(d.mean()), d.mean() - z * se, d.mean() + z * se, se, len(d), level)


def normal_quantile(p: float) -> float:
    """Φ⁻¹(p) by bisection on erf (no scipy needed); |error| < 1e-12."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def ratio_stderr(sums: Sequence[float], counts: Sequence[float]) -> float:
    """Standard error of the ratio estimator Σ sums / Σ counts over n independent units
    (the delta method): sqrt(Σ (s_i − R·c_i)² / (n(n−1))) / mean(c). 0 for a single unit."""
    s, c = np.asarray(sums, float), np.asarray(counts, float)
    n = len(s)
    if n < 2:
        return 0.0
    r = s.sum() / c.sum()
    return float(math.sqrt(((s - r * c) ** 2).sum() / (n * (n - 1))) / c.mean())
