"""LLaDA (GSAI-ML/LLaDA-8B-*, LLaDA-1.5, MMaDA-8B backbone) in plain PyTorch.

A Llama-style transformer with bidirectional attention (method.md §1). Parameter names equal the
real checkpoints' (`model.transformer.blocks.{i}.q_proj`, ...), so real weights load unchanged
without `trust_remote_code`. `causal=True` turns the same code into the autoregressive twin.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from .common import RMSNorm, TransformerLMMixin, apply_rope, attention


class LLaDAConfig(PretrainedConfig):
    """Reads the real LLaDA `config.json` fields; unknown OLMo-era fields are kept as attributes."""

    model_type = "llada"

    def __init__(
        self,
        d_model: int = 4096,
        n_layers: int = 32,
        n_heads: int = 32,
        n_kv_heads: int | None = None,
        head_dim: int | None = None,
        mlp_hidden_size: int = 12288,
        vocab_size: int = 126464,
        embedding_size: int | None = None,
        max_sequence_length: int = 4096,
        rope_theta: float = 500000.0,
        rms_norm_eps: float = 1e-5,
        mask_token_id: int = 126336,
        causal: bool = False,
        include_bias: bool = False,
        weight_tying: bool = False,
        **kwargs,
    ):
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads or n_heads
        self.head_dim = head_dim or d_model // n_heads
        self.mlp_hidden_size = mlp_hidden_size
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size or vocab_size
        self.max_sequence_length = max_sequence_length
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.mask_token_id = mask_token_id
        self.causal = causal
        self.include_bias = include_bias
        self.weight_tying = weight_tying
        kwargs.pop("auto_map", None)  # remote code is never used: sinkprune ships the classes
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)


class LLaDABlock(nn.Module):
    def __init__(self, cfg: LLaDAConfig):
        super().__init__()
        d, hd = cfg.d_model, cfg.head_dim
        bias = cfg.include_bias
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, hd
        self.causal = cfg.causal
        self.attn_norm = RMSNorm(d, cfg.rms_norm_eps)
        self.ff_norm = RMSNorm(d, cfg.rms_norm_eps)
        self.q_proj = nn.Linear(d, cfg.n_heads * hd, bias=bias)
        self.k_proj = nn.Linear(d, cfg.n_kv_heads * hd, bias=bias)
        self.v_proj = nn.Linear(d, cfg.n_kv_heads * hd, bias=bias)
        self.attn_out = nn.Linear(cfg.n_heads * hd, d, bias=bias)
        self.ff_proj = nn.Linear(d, cfg.mlp_hidden_size, bias=bias)  # gated branch (SiLU)
        self.up_proj = nn.Linear(d, cfg.mlp_hidden_size, bias=bias)
        self.ff_out = nn.Linear(cfg.mlp_hidden_size, d, bias=bias)  # down projection

    def forward(self, x, cos, sin, mass_chunk=None):
        B, T, _ = x.shape
        h = self.attn_norm(x)
        q = self.q_proj(h).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        a, mass = attention(q, k, v, self.causal, mass_chunk)
        x = x + self.attn_out(a.transpose(1, 2).reshape(B, T, -1))
        h = self.ff_norm(x)
        x = x + self.ff_out(nn.functional.silu(self.ff_proj(h)) * self.up_proj(h))
        return x, mass


class LLaDATransformer(nn.Module):
    def __init__(self, cfg: LLaDAConfig):
        super().__init__()
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(cfg.embedding_size, cfg.d_model),
                blocks=nn.ModuleList(LLaDABlock(cfg) for _ in range(cfg.n_layers)),
                ln_f=RMSNorm(cfg.d_model, cfg.rms_norm_eps),
                ff_out=nn.Linear(cfg.d_model, cfg.embedding_size, bias=False),
            )
        )


class LLaDAModelLM(TransformerLMMixin, PreTrainedModel):
    config_class = LLaDAConfig
    base_model_prefix = "model"
    _no_split_modules = ["LLaDABlock"]
    _supports_sdpa = True

    def __init__(self, config: LLaDAConfig):
        super().__init__(config)
        self.model = LLaDATransformer(config)
        self.post_init()

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.transformer.blocks

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.transformer.wte(input_ids)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        t = self.model.transformer
        return t.ff_out(t.ln_f(h))
