"""Layer-wise sparsity allocation (issue #18, docs/methods.md#layer-wise-allocation).

`uniform` prunes every linear at the target p with the method's own rule (Wanda/sink:
⌊p·d_in⌋ per row, the release's masks). The other allocations give block ℓ a sparsity p_ℓ whose
parameter-weighted mean is p:

- `owl` (Yin et al., arXiv 2310.05175): D_ℓ = share of block ℓ's importance scores (all its
  linears together, scored by the method itself on the dense model) above M · their mean;
  keep_ℓ = 2λ·(D_ℓ − min D)/(max D − min D), centred so that Σ n_ℓ·(1 − p_ℓ) = (1 − p)·Σ n_ℓ.
  More outliers → more weights kept. With equal block sizes (every transformer here) the centring
  is OWL's plain mean.
- `deeper` / `earlier`: p_ℓ linear in depth from p − ε to p + ε (deeper blocks sparser) or the
  reverse, centred the same way.

The allocated p_ℓ are real numbers; pruning needs counts. `exact_counts` turns them into the
number of weights to prune per linear, summing exactly to round(p · Σ numel) (largest-remainder
apportionment), and the selection spreads a linear's count over its rows (`select.
per_row_count_mask`) or, for SparseGPT, over its column blocks (`block_counts`). The achieved
parameter-weighted sparsity is therefore the target within 1/(2·Σ numel).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

log = logging.getLogger(__name__)

ALLOCATIONS = ("uniform", "owl", "deeper", "earlier")


@dataclass
class Allocation:
    """The layer-wise plan of one prune: allocated sparsity per block, OWL's outlier ratios, and
    the exact number of weights to prune per linear ("{block}.{linear}"); `counts` is None for
    `uniform` (each method's own per-row / per-matrix / per-column-block rule at p)."""

    kind: str = "uniform"
    target: float = 0.0
    layer_sparsity: list[float] = field(default_factory=list)
    outlier_ratio: list[float] = field(default_factory=list)
    counts: dict[str, int] | None = None

    def count(self, key: str) -> int | None:
        return None if self.counts is None else self.counts[key]

    def as_report(self) -> dict:
        out = {"kind": self.kind, "target": self.target}
        if self.layer_sparsity:
            out["layer_sparsity"] = {str(i): p for i, p in enumerate(self.layer_sparsity)}
        if self.outlier_ratio:
            out["outlier_ratio"] = {str(i): d for i, d in enumerate(self.outlier_ratio)}
        return out


# --------------------------------------------------------------- allocations ---
def outlier_ratio(scores: Sequence[torch.Tensor], m: float) -> float:
    """OWL's D_ℓ: share of the scores of all of a block's linears (jointly) above m × their mean."""
    flat = torch.cat([s.detach().reshape(-1).double().cpu() for s in scores])
    return float((flat > m * flat.mean()).double().mean().item())


def _centred(delta: np.ndarray, target: float, sizes: np.ndarray) -> np.ndarray:
    """target + δ − (parameter-weighted mean of δ): Σ sizes·p_ℓ = target·Σ sizes."""
    return target + delta - float(np.dot(sizes, delta) / sizes.sum())


def owl_sparsities(
    ratios: Sequence[float], target: float, lam: float, sizes: Sequence[int]
) -> np.ndarray:
    """p_ℓ of OWL from the outlier ratios D_ℓ (module docstring). Equal ratios give uniform p
    (the normalisation is 0/0 there; logged)."""
    d = np.asarray(ratios, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.float64)
    if d.max() == d.min():
        log.warning("owl: every block has outlier ratio %.6g; allocation is uniform", d[0])
        return np.full(d.shape, float(target))
    keep = (d - d.min()) / (d.max() - d.min()) * 2 * lam
    return _centred(-keep, target, sizes)


def schedule_sparsities(kind: str, target: float, eps: float, sizes: Sequence[int]) -> np.ndarray:
    """p_ℓ of `deeper` (p − ε at block 0 … p + ε at the last) or `earlier` (the reverse)."""
    n = len(sizes)
    ramp = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    sign = {"deeper": 1.0, "earlier": -1.0}[kind]
    return _centred(sign * eps * ramp, target, np.asarray(sizes, dtype=np.float64))


def exact_counts(
    layer_sparsity: Sequence[float], numel: Mapping[str, int], target: float
) -> dict[str, int]:
    """Weights to prune per linear ("{block}.{linear}" → count): linear l of block ℓ ideally
    prunes p_ℓ·numel_l; the floors plus one for the largest remainders (ties: earlier linear)
    so that the counts sum to round(target·Σ numel), half up."""
    keys = list(numel)
    sizes = np.array([numel[k] for k in keys], dtype=np.float64)
    ideal = np.array([layer_sparsity[int(k.split(".", 1)[0])] for k in keys]) * sizes
    total = math.floor(target * sizes.sum() + 0.5)
    base = np.floor(ideal)
    short = total - int(base.sum())
    if not 0 <= short <= len(keys):
        raise ValueError(
            f"allocation: cannot apportion {total} pruned weights over {len(keys)} linears "
            f"(floors sum to {int(base.sum())}); layer sparsities {list(layer_sparsity)}"
        )
    order = np.argsort(-(ideal - base), kind="stable")
    base[order[:short]] += 1
    counts = {k: int(c) for k, c in zip(keys, base, strict=True)}
    over = [k for k in keys if not 0 <= counts[k] <= numel[k]]
    if over:
        raise ValueError(f"allocation: counts outside [0, numel] for {over}")
    return counts


def block_counts(count: int, cols: int, rows: int, blocksize: int) -> list[int]:
    """A linear's `count` over SparseGPT's column blocks in proportion to their size (largest
    remainder, ties: earlier block); sums to `count`."""
    widths = [min(blocksize, cols - i) for i in range(0, cols, blocksize)]
    ideal = np.array([count * w / cols for w in widths])
    base = np.floor(ideal)
    short = count - int(base.sum())
    base[np.argsort(-(ideal - base), kind="stable")[:short]] += 1
    out = [int(b) for b in base]
    if any(c > w * rows for c, w in zip(out, widths, strict=True)):
        raise ValueError(f"allocation: {count} weights do not fit the column blocks {widths}")
    return out


# ------------------------------------------------------------------ planner ---
def linear_numel(adapter) -> dict[str, int]:
    return {
        f"{i}.{n}": lin.weight.numel()
        for i in range(adapter.n_layers)
        for n, lin in adapter.linears(i).items()
    }


def block_sizes(numel: Mapping[str, int], n_layers: int) -> list[int]:
    sizes = [0] * n_layers
    for key, n in numel.items():
        sizes[int(key.split(".", 1)[0])] += n
    return sizes


def allocate(method, adapter, calib, spec) -> Allocation:
    """The Allocation of `spec.allocation` for `method` on the (still dense) model.

    OWL scores every block with the method's own importance scores on the dense model
    (`method.block_scores`: for the sequential methods a dense block-by-block pass over the
    method's calibration inputs, as OWL's reference code does before it prunes) and keeps only
    D_ℓ per block.
    """
    kind = spec.allocation
    if kind not in ALLOCATIONS:
        raise ValueError(f"allocation {kind!r} is unknown (known: {list(ALLOCATIONS)})")
    if kind == "uniform":
        return Allocation("uniform", spec.sparsity)
    if spec.sparsity_type != "unstructured":
        raise ValueError(
            f"allocation {kind!r} needs sparsity_type 'unstructured', got {spec.sparsity_type!r}"
        )
    numel = linear_numel(adapter)
    sizes = block_sizes(numel, adapter.n_layers)
    ratios: list[float] = []
    if kind == "owl":
        found: dict[int, float] = {}

        def visit(i: int, scores: Mapping[str, torch.Tensor]) -> None:
            found[i] = outlier_ratio(list(scores.values()), spec.owl_m)

        method.block_scores(adapter, calib, spec, visit)
        ratios = [found[i] for i in range(adapter.n_layers)]
        layer = owl_sparsities(ratios, spec.sparsity, spec.owl_lambda, sizes)
        setting = f"pruning.owl.lambda = {spec.owl_lambda}"
    else:
        layer = schedule_sparsities(kind, spec.sparsity, spec.schedule_epsilon, sizes)
        setting = f"pruning.schedule.epsilon = {spec.schedule_epsilon}"
    if (layer < 0).any() or (layer > 1).any():
        raise ValueError(
            f"allocation {kind!r} at sparsity {spec.sparsity} with {setting} gives layer "
            f"sparsities outside [0, 1]: {layer.tolist()}"
        )
    counts = exact_counts(layer.tolist(), numel, spec.sparsity)
    log.info(
        "%s allocation at %.4g: layer sparsities %s",
        kind,
        spec.sparsity,
        ", ".join(f"{p:.4f}" for p in layer),
    )
    return Allocation(kind, spec.sparsity, layer.tolist(), ratios, counts)
