"""LLaDA (GSAI-ML/LLaDA-8B-*, LLaDA-1.5, MMaDA-8B backbone) in plain PyTorch.

A Llama-style transformer with bidirectional attention (method.md §1). Parameter names equal the
real checkpoints' (`model.transformer.blocks.{i}.q_proj`, ...), so real weights load unchanged
without `trust_remote_code`. `causal=True` turns the same code into the autoregressive twin.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from .common import (
    LayerNorm,
    ModelConfigError,
    RMSNorm,
    TransformerLMMixin,
    apply_rope,
    attention,
    check_supported,
)


class LLaDAConfig(PretrainedConfig):
    """Reads the real LLaDA `config.json` fields (OLMo-era names).

    Fields that change the computation are honoured as the official `modeling_llada.py` does, or
    refused by `check_supported` with an error naming the field (see `LLADA_UNSUPPORTED`);
    initialisation, dropout (identity at inference), precision and cache fields are kept as
    attributes and have no effect.
    """

    model_type = "llada"

    def __init__(
        self,
        d_model: int = 4096,
        n_layers: int = 32,
        n_heads: int = 32,
        n_kv_heads: int | None = None,
        head_dim: int | None = None,
        mlp_hidden_size: int | None = 12288,
        mlp_ratio: int = 4,
        vocab_size: int = 126464,
        embedding_size: int | None = None,
        max_sequence_length: int = 4096,
        rope_theta: float = 500000.0,
        rms_norm_eps: float = 1e-5,
        mask_token_id: int = 126336,
        causal: bool = False,
        include_bias: bool = False,
        include_qkv_bias: bool = False,
        bias_for_layer_norm: bool | None = None,
        layer_norm_type: str = "rms",
        layer_norm_with_affine: bool = True,
        activation_type: str = "silu",
        weight_tying: bool = False,
        scale_logits: bool = False,
        input_emb_norm: bool = False,
        multi_query_attention: bool | None = None,
        **kwargs,
    ):
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.n_kv_heads = effective_n_kv_heads(n_heads, n_kv_heads, multi_query_attention)
        self.multi_query_attention = multi_query_attention
        self.head_dim = head_dim or d_model // n_heads
        self.mlp_hidden_size = mlp_hidden_size or mlp_ratio * d_model
        self.mlp_ratio = mlp_ratio
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size or vocab_size
        self.max_sequence_length = max_sequence_length
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.mask_token_id = mask_token_id
        self.causal = causal
        self.include_bias = include_bias
        self.include_qkv_bias = include_qkv_bias
        self.bias_for_layer_norm = bias_for_layer_norm
        self.layer_norm_type = layer_norm_type
        self.layer_norm_with_affine = layer_norm_with_affine
        self.activation_type = activation_type
        self.weight_tying = weight_tying
        self.scale_logits = scale_logits
        self.input_emb_norm = input_emb_norm
        kwargs.pop("auto_map", None)  # remote code is never used: sinkprune ships the classes
        # the official code ties the head only through `weight_tying`; transformers' own flag
        # would tie a second time, so it is always off for this family
        kwargs["tie_word_embeddings"] = False
        super().__init__(**kwargs)


def effective_n_kv_heads(n_heads: int, n_kv_heads: int | None, mqa: bool | None) -> int:
    """KV heads as OLMo/LLaDA's `effective_n_kv_heads` resolves n_kv_heads and
    multi_query_attention (1 for MQA; both set and disagreeing is an error)."""
    if n_kv_heads is None:
        return 1 if mqa else n_heads
    if mqa is None or n_kv_heads == (1 if mqa else n_heads):
        return n_kv_heads
    raise ModelConfigError(
        f"config.json: multi_query_attention={mqa} contradicts n_kv_heads={n_kv_heads}"
    )


#: field -> (values the official code accepts that sinkprune does not implement, as a test)
LLADA_UNSUPPORTED = {
    "block_type": lambda v: v not in (None, "llama"),
    "rope": lambda v: v is False,
    "alibi": lambda v: bool(v),
    "yarn": lambda v: bool(v),
    "rope_scaling": lambda v: v is not None,
    "rope_parameters": lambda v: v is not None and v.get("rope_type", "default") != "default",
    "attention_layer_norm": lambda v: bool(v),
    "clip_qkv": lambda v: v is not None,
    "rope_full_precision": lambda v: v is False,
    "block_group_size": lambda v: v not in (None, 1),
    "layer_norm_type": lambda v: v not in ("rms", "gemma_rms", "default", "low_precision"),
    "activation_type": lambda v: v not in ("silu", "gelu", "relu"),
}


def make_norm(cfg: LLaDAConfig) -> nn.Module:
    """attn_norm / ff_norm / ln_f as the official LayerNormBase.build makes them."""
    bias = cfg.include_bias if cfg.bias_for_layer_norm is None else cfg.bias_for_layer_norm
    affine = cfg.layer_norm_with_affine
    if cfg.layer_norm_type in ("default", "low_precision"):
        return LayerNorm(cfg.d_model, 1e-5, affine, bias)  # the official LayerNorm's fixed eps
    gemma = cfg.layer_norm_type == "gemma_rms"
    return RMSNorm(cfg.d_model, cfg.rms_norm_eps, affine, bias, gemma)


ACTIVATIONS = {
    "silu": nn.functional.silu,
    "gelu": nn.functional.gelu,  # approximate="none", as the official GELU
    "relu": nn.functional.relu,
}


class LLaDABlock(nn.Module):
    def __init__(self, cfg: LLaDAConfig):
        super().__init__()
        d, hd = cfg.d_model, cfg.head_dim
        bias = cfg.include_bias
        qkv_bias = cfg.include_bias or cfg.include_qkv_bias
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, hd
        self.causal = cfg.causal
        self.act = ACTIVATIONS[cfg.activation_type]
        self.attn_norm = make_norm(cfg)
        self.ff_norm = make_norm(cfg)
        self.q_proj = nn.Linear(d, cfg.n_heads * hd, bias=qkv_bias)
        self.k_proj = nn.Linear(d, cfg.n_kv_heads * hd, bias=qkv_bias)
        self.v_proj = nn.Linear(d, cfg.n_kv_heads * hd, bias=qkv_bias)
        self.attn_out = nn.Linear(cfg.n_heads * hd, d, bias=bias)
        self.ff_proj = nn.Linear(d, cfg.mlp_hidden_size, bias=bias)  # gated branch
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
        x = x + self.ff_out(self.act(self.ff_proj(h)) * self.up_proj(h))
        return x, mass


class LLaDATransformer(nn.Module):
    def __init__(self, cfg: LLaDAConfig):
        super().__init__()
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(cfg.embedding_size, cfg.d_model),
                blocks=nn.ModuleList(LLaDABlock(cfg) for _ in range(cfg.n_layers)),
                ln_f=make_norm(cfg),
            )
        )
        if not cfg.weight_tying:  # tied: the head is wte's weight, as in the official code
            self.transformer["ff_out"] = nn.Linear(
                cfg.d_model, cfg.embedding_size, bias=cfg.include_bias
            )


class LLaDAModelLM(TransformerLMMixin, PreTrainedModel):
    config_class = LLaDAConfig
    base_model_prefix = "model"
    _no_split_modules = ["LLaDABlock"]
    _supports_sdpa = True

    def __init__(self, config: LLaDAConfig):
        check_supported(config, LLADA_UNSUPPORTED, "llada")
        super().__init__(config)
        self.model = LLaDATransformer(config)
        self.post_init()

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.transformer.blocks

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.model.transformer.wte(input_ids)
        if self.config.input_emb_norm:
            x = x * (self.config.d_model**0.5)
        return x

    def head(self, h: torch.Tensor) -> torch.Tensor:
        t = self.model.transformer
        h = t.ln_f(h)
        if self.config.weight_tying:
            logits = nn.functional.linear(h, t.wte.weight)
        else:
            logits = t.ff_out(h)
        if self.config.scale_logits:
            logits = logits * (1 / math.sqrt(self.config.d_model))
        return logits
