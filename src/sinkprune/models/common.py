"""Pieces shared by the model families: RMSNorm, rotary embeddings, attention with mass capture.

Attention mass (method.md §3): for each key j the column sum Σ_heads Σ_queries softmax(q·kᵀ/√d),
post-RoPE, in fp32. It is accumulated over chunks of query rows so that the (B, H, T, T)
probability tensor is never materialised; the layer's output still comes from SDPA.
"""

from __future__ import annotations

import math
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
    """weight · (x · rsqrt(mean(x²) + eps)) (+ bias) in the official casting order.

    The normalisation runs in fp32 and is cast back to x's dtype *before* the weight multiply and
    bias add, which run in the parameters' dtype (LLaDA's RMSLayerNorm, Dream's RMSNorm): with
    bf16 weights both roundings happen as in the official code, so logits match it bit for bit.
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
        h = x.float()
        h = (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)
        if self.weight is None:
            return h
        h = h * (1 + self.weight) if self.gemma else self.weight * h
        return h if self.bias is None else h + self.bias


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


def apply_rope(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, full_precision: bool = True
) -> torch.Tensor:
    """Rotate (B, H, T, D) by the fp32 tables.

    full_precision (LLaDA's `rope_full_precision`): in fp32, cast back to x's dtype. Otherwise
    (Dream, the Qwen2 code) the tables are cast to x's dtype and the rotation runs in it.
    """
    if not full_precision:
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat([-x2, x1], dim=-1) * sin
    dtype = x.dtype
    x = x.float()
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (x * cos + rotated * sin).to(dtype)


def column_mass(q: torch.Tensor, k: torch.Tensor, causal: bool, chunk_size: int) -> torch.Tensor:
    """Σ_heads Σ_queries softmax(q·kᵀ/√d) per key, shape (B, T), fp32, chunked over queries.

    q, k: (B, H, T, D) post-RoPE, k already expanded to H heads (GQA). As the release's capture:
    q·kᵀ and the division by √d in the activations' dtype (bf16 on GPU), the softmax in fp32,
    summed over queries, then over heads.
    """
    B, H, T, D = q.shape
    denom = math.sqrt(D)
    kt = k.transpose(-1, -2)
    per_head = torch.zeros(B, H, T, dtype=torch.float32, device=q.device)
    for start in range(0, T, chunk_size):
        stop = min(start + chunk_size, T)
        scores = torch.matmul(q[:, :, start:stop], kt).div_(denom).float()  # (B, H, c, T)
        if causal:
            rows = torch.arange(start, stop, device=q.device)[:, None]
            cols = torch.arange(T, device=q.device)[None, :]
            scores.masked_fill_(cols > rows, float("-inf"))
        # softmax in place: one (B, H, c, T) fp32 buffer per chunk is the working set
        scores.sub_(scores.amax(dim=-1, keepdim=True)).exp_()
        scores.div_(scores.sum(dim=-1, keepdim=True))
        per_head += scores.sum(dim=2)
        del scores
    return per_head.sum(dim=1)


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

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """PreTrainedModel.from_pretrained, refusing a checkpoint whose config ties the output
        head to the embedding while its file stores a different head (transformers would only
        warn and leave the two untied)."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        where = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        for target, source in model.get_expanded_tied_weights_keys(all_submodels=True).items():
            if model.get_parameter(target) is not model.get_parameter(source):
                raise ModelConfigError(
                    f"{where}/config.json: tie_word_embeddings is set but {target} in the "
                    f"weights differs from {source}"
                )
        return loaded

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
