"""Pieces shared by the model families: RMSNorm, rotary embeddings, attention with mass capture.

Attention mass (method.md §3): for each key j the column sum Σ_heads Σ_queries softmax(q·kᵀ/√d),
post-RoPE, in fp32. It is accumulated over chunks of query rows so that the (B, H, T, T)
probability tensor is never materialised; the layer's output still comes from SDPA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """x · rsqrt(mean(x²) + eps) · weight, computed in fp32."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x * self.weight.float()).to(dtype)


def rope_cos_sin(
    seq_len: int, head_dim: int, theta: float, device, dtype=torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (T, head_dim) for the half-split ("rotate_half") rotary layout."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    pos = torch.arange(seq_len, device=device).float()
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, T, D) by the tables; computed in fp32 and cast back."""
    dtype = x.dtype
    x = x.float()
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (x * cos + rotated * sin).to(dtype)


def column_mass(q: torch.Tensor, k: torch.Tensor, causal: bool, chunk_size: int) -> torch.Tensor:
    """Σ_heads Σ_queries softmax(q·kᵀ/√d) per key, shape (B, T), fp32, chunked over queries.

    q, k: (B, H, T, D) post-RoPE, k already expanded to H heads (GQA).
    """
    B, H, T, D = q.shape
    scale = D**-0.5
    kt = k.float().transpose(-1, -2)
    mass = torch.zeros(B, T, dtype=torch.float32, device=q.device)
    for start in range(0, T, chunk_size):
        stop = min(start + chunk_size, T)
        scores = torch.matmul(q[:, :, start:stop].float(), kt).mul_(scale)  # (B, H, c, T)
        if causal:
            rows = torch.arange(start, stop, device=q.device)[:, None]
            cols = torch.arange(T, device=q.device)[None, :]
            scores.masked_fill_(cols > rows, float("-inf"))
        # softmax in place: one (B, H, c, T) buffer per chunk is the whole working set
        scores.sub_(scores.amax(dim=-1, keepdim=True)).exp_()
        scores.div_(scores.sum(dim=-1, keepdim=True))
        mass += scores.sum(dim=(1, 2))
        del scores
    return mass


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    mass_chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """SDPA over (B, H, T, D) q and (B, KV, T, D) k/v; optionally also the column mass (B, T)."""
    n_rep = q.shape[1] // k.shape[1]
    if n_rep > 1:
        k = k.repeat_interleave(n_rep, dim=1)
        v = v.repeat_interleave(n_rep, dim=1)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    mass = column_mass(q, k, causal, mass_chunk) if mass_chunk else None
    return out, mass
