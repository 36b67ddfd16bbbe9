"""Mask selection shared by all unstructured / N:M methods (method.md §5).

A mask is a bool tensor shaped like the weight, True where the weight is pruned. Selection is
defined by a stable sort of the scores, so ties break by column index and masks are reproducible.
On CPU the same mask is found faster by a selection (partition) threshold; `lowest_k` checks
that it is the stable sort's and sorts the few groups where a tie straddles the threshold.
"""

from __future__ import annotations

import numpy as np
import torch

NM_TYPES = {"2:4": (2, 4), "4:8": (4, 8)}


def lowest_k_sorted(scores: torch.Tensor, k: int, dim: int = -1) -> torch.Tensor:
    """The definition: bool mask of the first k entries of a stable sort along `dim`."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if k <= 0:
        return mask
    idx = torch.sort(scores, dim=dim, stable=True).indices.narrow(dim, 0, k)
    return mask.scatter_(dim, idx, True)


def _lowest_k_partition(scores: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """lowest_k_sorted by an O(n) partition on CPU: mask = (S ≤ k-th smallest). Where that set
    has exactly k members it *is* the first k of the stable sort (all values below the
    threshold, no tie across it); the other groups (ties at the threshold, NaN) are sorted."""
    moved = scores.movedim(dim, -1)
    shape = moved.shape
    flat = moved.reshape(-1, shape[-1])
    a = flat.numpy()
    thr = np.partition(a, k - 1, axis=1)[:, k - 1 : k]
    mask = a <= thr
    bad = np.flatnonzero(np.count_nonzero(mask, axis=1) != k)
    out = torch.from_numpy(mask)
    if bad.size:
        rows = torch.from_numpy(bad)
        out[rows] = lowest_k_sorted(flat[rows], k, dim=1)
    return out.reshape(shape).movedim(-1, dim)


def lowest_k(scores: torch.Tensor, k: int, dim: int = -1) -> torch.Tensor:
    """Bool mask of the k lowest entries along `dim` (stable order: earlier index wins ties)."""
    n = scores.shape[dim]
    fast = (
        scores.device.type == "cpu"
        and scores.dtype in (torch.float32, torch.float64)
        and 0 < k < n
        and scores.numel() > 0
    )
    if not fast:
        return lowest_k_sorted(scores, k, dim)
    return _lowest_k_partition(scores.detach(), k, dim)


def per_row_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Prune the ⌊d_in·p⌋ lowest scores of every output row (Wanda's comparison group)."""
    return lowest_k(scores, int(scores.shape[1] * sparsity), dim=1)


def per_matrix_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Prune the ⌊numel·p⌋ lowest scores of the whole matrix (magnitude's threshold)."""
    flat = lowest_k(scores.reshape(-1), int(scores.numel() * sparsity), dim=0)
    return flat.view_as(scores)


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Prune the n lowest scores in every group of m consecutive input columns of each row."""
    rows, cols = scores.shape
    if cols % m:
        raise ValueError(
            f"N:M {n}:{m} needs the input dimension to be a multiple of {m}, got {cols}"
        )
    groups = scores.reshape(rows, cols // m, m)
    return lowest_k(groups, n, dim=2).reshape(rows, cols)


def parse_nm(sparsity_type: str) -> tuple[int, int] | None:
    """(n, m) for '2:4' / '4:8', None for 'unstructured'; anything else is an error."""
    if sparsity_type == "unstructured":
        return None
    if sparsity_type not in NM_TYPES:
        raise ValueError(
            f"sparsity_type {sparsity_type!r}: expected 'unstructured' or one of {sorted(NM_TYPES)}"
        )
    return NM_TYPES[sparsity_type]


def per_row_count_mask(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Prune exactly `count` weights, spread over the rows as evenly as possible: every row its
    k = ⌊count/rows⌋ lowest, and the r = count mod rows rows whose (k+1)-th lowest score is
    smallest (ties: lower row) one more. With r = 0 this is `per_row_mask` at p = k/d_in."""
    rows, cols = scores.shape
    if not 0 <= count <= scores.numel():
        raise ValueError(f"cannot prune {count} of {scores.numel()} weights")
    k, r = divmod(count, rows)
    mask = lowest_k(scores, k, dim=1)
    if r:
        nxt = torch.kthvalue(scores.float().cpu(), k + 1, dim=1).values
        extra = torch.sort(nxt, stable=True).indices[:r].to(scores.device)
        mask[extra] = lowest_k(scores[extra], k + 1, dim=1)
    return mask


def per_matrix_count_mask(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Prune exactly the `count` lowest scores of the whole matrix (stable order)."""
    return lowest_k(scores.reshape(-1), count, dim=0).view_as(scores)


def select_mask(
    scores: torch.Tensor,
    sparsity: float,
    sparsity_type: str,
    scope: str = "row",
    count: int | None = None,
):
    """Unstructured (per `scope`: 'row' or 'matrix') or N:M mask from a score matrix. With
    `count` (a non-uniform layer-wise allocation) exactly that many weights are pruned."""
    nm = parse_nm(sparsity_type)
    if nm is not None:
        if count is not None:
            raise ValueError("a layer-wise allocation (count) does not apply to N:M sparsity")
        return nm_mask(scores, *nm)
    if scope not in ("row", "matrix"):
        raise ValueError(f"unknown selection scope {scope!r} (expected 'row' or 'matrix')")
    if count is not None:
        return (
            per_row_count_mask(scores, count)
            if scope == "row"
            else per_matrix_count_mask(scores, count)
        )
    if scope == "row":
        return per_row_mask(scores, sparsity)
    return per_matrix_mask(scores, sparsity)
