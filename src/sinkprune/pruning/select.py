"""Mask selection shared by all unstructured / N:M methods (method.md §5).

A mask is a bool tensor shaped like the weight, True where the weight is pruned. Selection is
by a stable sort of the scores, so ties break by column index and masks are reproducible.
"""

from __future__ import annotations

import torch

NM_TYPES = {"2:4": (2, 4), "4:8": (4, 8)}


def lowest_k(scores: torch.Tensor, k: int, dim: int = -1) -> torch.Tensor:
    """Bool mask of the k lowest entries along `dim` (stable order: earlier index wins ties)."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if k <= 0:
        return mask
    idx = torch.sort(scores, dim=dim, stable=True).indices.narrow(dim, 0, k)
    return mask.scatter_(dim, idx, True)


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


def select_mask(scores: torch.Tensor, sparsity: float, sparsity_type: str, scope: str = "row"):
    """Unstructured (per `scope`: 'row' or 'matrix') or N:M mask from a score matrix."""
    nm = parse_nm(sparsity_type)
    if nm is not None:
        return nm_mask(scores, *nm)
    if scope == "row":
        return per_row_mask(scores, sparsity)
    if scope == "matrix":
        return per_matrix_mask(scores, sparsity)
    raise ValueError(f"unknown selection scope {scope!r} (expected 'row' or 'matrix')")
