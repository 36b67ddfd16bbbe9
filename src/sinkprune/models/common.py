"""Pieces shared by the model families: RMSNorm, rotary embeddings, attention with mass capture.

Attention mass (method.md §3): for each key j the column sum Σ_heads Σ_queries softmax(q·kᵀ/√d),
post-RoPE, in fp32. It is accumulated over chunks of query rows so that the (B, H, T, T)
probability tensor is never materialised; the layer's output still comes from SDPA.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput


class ModelConfigError(ValueError):
    """A checkpoint's config.json asks for something the model code does not implement."""


def check_supported(cfg, table: dict, family: str) -> None:
    """Raise ModelConfigError naming the first config field whose value is not implemented."""
    for field, unsupported in table.items():
        value = getattr(cfg, field, None)
        if unsupported(value):
            raise ModelConfigError(
                f"config.json field {field}={value!r} is not implemented by sinkprune's "
                f"{family} model (docs/decisions.md, 'Model config fields'); refusing to load "
                "a model that would compute something else"
            )


class RMSNorm(nn.Module):
    """x · rsqrt(mean(x²) + eps) · weight (+ bias), computed in fp32.

    `affine=False` drops the weight (and bias); `gemma=True` scales by (1 + weight) instead
    (LLaDA's `layer_norm_type: gemma_rms`). The default is the plain RMSNorm of LLaDA and Dream.
    """

    def __init__(
        self, dim: int, eps: float = 1e-5, affine: bool = True, bias: bool = False, gemma=False
    ):
        super().__init__()
        self.eps = eps
        self.gemma = gemma
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None
        self.bias = nn.Parameter(torch.zeros(dim)) if affine and bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.weight is not None:
            x = x * (1 + self.weight.float() if self.gemma else self.weight.float())
        if self.bias is not None:
            x = x + self.bias.float()
        return x.to(dtype)


class LayerNorm(nn.Module):
    """torch LayerNorm with optional affine weight and bias (LLaDA `layer_norm_type: default`)."""

    def __init__(self, dim: int, eps: float = 1e-5, affine: bool = True, bias: bool = False):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None
        self.bias = nn.Parameter(torch.zeros(dim)) if affine and bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


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


@dataclass
class DLMOutput(ModelOutput):
    """logits (B, T, V); attention_mass (L, B, T) fp32 when requested."""

    logits: torch.Tensor | None = None
    attention_mass: torch.Tensor | None = None


class TransformerLMMixin:
    """What both families share: weight init, RoPE tables and the forward loop over blocks.

    A family provides `blocks`, `embed(input_ids)` and `head(h)`; each block is called as
    `block(h, cos, sin, mass_chunk) -> (h, mass or None)`.
    """

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, (RMSNorm, LayerNorm)):
            if module.weight is not None:
                nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def rope(self, seq_len: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        return rope_cos_sin(seq_len, self.config.head_dim, self.config.rope_theta, device)

    def forward(
        self,
        input_ids: torch.Tensor,
        output_attention_mass: bool = False,
        mass_chunk: int = 256,
        **_,
    ) -> DLMOutput:
        h = self.embed(input_ids)
        cos, sin = self.rope(input_ids.shape[1], input_ids.device)
        masses = []
        for block in self.blocks:
            h, mass = block(h, cos, sin, mass_chunk if output_attention_mass else None)
            if mass is not None:
                masses.append(mass)
        return DLMOutput(
            logits=self.head(h), attention_mass=torch.stack(masses) if masses else None
        )
