"""The SparseGPT column solver (method.md §5, sparsegpt), shared by `sparsegpt` and `sink_sgpt`.

Given a weight W (rows × d_in) and the layer Hessian H = (2/N) Σ XᵀX, prune column blocks and
update the not-yet-processed weights with the OBS correction err ⊗ U[i, i:], U the upper Cholesky
factor of H⁻¹. **[decision]** a failed Cholesky retries with 10× damping, at most 3 times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .allocation import block_counts
from .select import lowest_k

log = logging.getLogger(__name__)


class CholeskyError(RuntimeError):
    """H + λI stayed not positive definite after every damping retry."""


@dataclass
class SolverInfo:
    """What the solver did for one linear: final damping, retries, dead inputs, OBS loss."""

    damp: float
    retries: int
    dead_inputs: int
    loss: float


def inverse_cholesky(
    H: torch.Tensor, percdamp: float, max_retries: int = 3, name: str = "linear"
) -> tuple[torch.Tensor, float, int]:
    """Upper Cholesky factor of (H + λI)⁻¹, λ = percdamp·mean(diag H), 10× λ per retry.

    λ is computed in H's dtype (fp32) and added to the diagonal in place, as the release does
    (`damp = percdamp * torch.mean(torch.diag(H)); H[diag, diag] += damp`).

    Returns (U, λ used, retries). Raises CholeskyError naming `name` when every try fails.
    """
    base = percdamp * torch.mean(torch.diag(H))  # a 0-d tensor in H's dtype, as the release
    for retry in range(max_retries + 1):
        damp = base * 10.0**retry if retry else base
        lam = float(damp)
        damped = H.clone()
        damped.diagonal().add_(damp)
        L, info = torch.linalg.cholesky_ex(damped)
        if info.item() == 0:
            Hinv = torch.cholesky_inverse(L)
            U, info = torch.linalg.cholesky_ex(Hinv, upper=True)
            if info.item() == 0 and torch.isfinite(U).all():
                if retry:
                    log.warning(
                        "%s: Cholesky succeeded with damping %.3g (retry %d)", name, lam, retry
                    )
                return U, lam, retry
        log.warning("%s: Cholesky failed with damping %.3g", name, lam)
    raise CholeskyError(
        f"{name}: the Hessian H + λI is not positive definite even with damping λ = {lam:.3g} "
        f"({max_retries} retries at 10× pruning.sparsegpt.percdamp={percdamp}); the calibration "
        "activations are degenerate (NaN/inf or too few samples) — check the calibration data"
    )


@torch.no_grad()
def sparsegpt_solve(
    W: torch.Tensor,
    H: torch.Tensor,
    sparsity: float,
    nm: tuple[int, int] | None = None,
    blocksize: int = 128,
    percdamp: float = 0.01,
    max_retries: int = 3,
    name: str = "linear",
    count: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, SolverInfo]:
    """Prune W (any dtype) with Hessian H; returns (new W in fp32, pruned mask, SolverInfo).

    Unstructured: in every block of `blocksize` columns the ⌊p·numel⌋ lowest W²/diag(U)² over all
    rows jointly are pruned; with `count` (a layer-wise allocation) exactly `count` weights,
    apportioned over the column blocks by size (`allocation.block_counts`). N:M: at every m-th
    column, the n lowest of the next m per row.
    """
    W, H, dead = _prepared(W, H)
    rows, cols = W.shape
    if nm is not None and (blocksize % nm[1] or cols % nm[1]):
        raise ValueError(
            f"{name}: N:M {nm[0]}:{nm[1]} needs pruning.sparsegpt.blocksize ({blocksize}) and the "
            f"input dimension ({cols}) to be multiples of {nm[1]}"
        )
    if count is not None and nm is not None:
        raise ValueError(f"{name}: a layer-wise allocation (count) does not apply to N:M")
    per_block = None if count is None else block_counts(count, cols, rows, blocksize)
    U, damp, retries = inverse_cholesky(H, percdamp, max_retries, name)
    del H

    mask = torch.zeros_like(W, dtype=torch.bool)
    losses = torch.zeros(rows, device=W.device)
    for b, i1 in enumerate(range(0, cols, blocksize)):
        i2 = min(i1 + blocksize, cols)
        U1 = U[i1:i2, i1:i2]
        d = torch.diag(U1)
        # the block's columns as contiguous rows (W1t[i] = column i1 + i): the per-column OBS
        # update then walks memory in order; every element gets the same arithmetic as W[:, j]
        W1t = W[:, i1:i2].T.contiguous()
        if nm is None:
            score = W1t.T**2 / d.unsqueeze(0) ** 2
            k = int(score.numel() * sparsity) if per_block is None else per_block[b]
            mask1t = lowest_k(score.reshape(-1), k, dim=0)
            mask1t = mask1t.view_as(score).T.contiguous()
        else:
            mask1t = torch.zeros_like(W1t, dtype=torch.bool)
        Q1t = torch.empty_like(W1t)
        Err1t = torch.empty_like(W1t)
        for i in range(i2 - i1):
            if nm is not None and i % nm[1] == 0:
                n, m = nm
                score = W1t[i : i + m].T ** 2 / d[i : i + m].unsqueeze(0) ** 2
                mask1t[i : i + m] = lowest_k(score, n, dim=1).T
            w = W1t[i]
            q = w.masked_fill(mask1t[i], 0)
            Q1t[i] = q
            err = (w - q) / U1[i, i]
            losses += err**2 / 2
            W1t[i:] -= U1[i, i:].unsqueeze(1) * err.unsqueeze(0)
            Err1t[i] = err
        W[:, i1:i2] = Q1t.T
        mask[:, i1:i2] = mask1t.T
        W[:, i2:] -= Err1t.T.contiguous() @ U[i1:i2, i2:]
    info = SolverInfo(damp, retries, int(dead.sum().item()), float(losses.sum().item()))
    return W, mask, info


def _prepared(W: torch.Tensor, H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """fp32 copies of W and H with dead inputs (H_ii = 0) set to H_ii = 1 and W[:, i] = 0."""
    W = W.detach().clone().float()
    H = H.detach().clone().float().to(W.device)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    return W, H, dead


@torch.no_grad()
def obs_scores(
    W: torch.Tensor, H: torch.Tensor, percdamp: float = 0.01, name: str = "linear"
) -> torch.Tensor:
    """SparseGPT's selection score W²/diag(U)² of the unpruned W (what the solver compares in its
    first column block, before any update): the importance OWL uses for `sparsegpt` /
    `sink_sgpt`."""
    W, H, _ = _prepared(W, H)
    U, _, _ = inverse_cholesky(H, percdamp, name=name)
    return W**2 / torch.diag(U).unsqueeze(0) ** 2
