"""Dream-v0 (Dream-org/Dream-v0-Base-7B) in plain PyTorch.

Qwen2 weights (q/k/v biases, GQA) run with bidirectional attention (method.md §1). Parameter names
equal the real checkpoint's (`model.layers.{i}.self_attn.q_proj`, `lm_head`, ...). Dream's logits
are shifted: the logit at position i predicts token i+1; `DreamModel.mdm_logits` undoes that.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.activations import ACT2FN

from .common import RMSNorm, TransformerLMMixin, apply_rope, attention, check_supported


class DreamConfig(PretrainedConfig):
    """Reads the real Dream `config.json` fields (Qwen2 names).

    `hidden_act` and `tie_word_embeddings` are honoured as the official `modeling_dream.py` does;
    values of fields it does not implement are refused by `check_supported` (`DREAM_UNSUPPORTED`).
    """

    model_type = "Dream"

    def __init__(
        self,
        hidden_size: int = 3584,
        intermediate_size: int = 18944,
        num_hidden_layers: int = 28,
        num_attention_heads: int = 28,
        num_key_value_heads: int = 4,
        head_dim: int | None = None,
        vocab_size: int = 152064,
        max_position_embeddings: int = 131072,
        rope_theta: float = 1000000.0,
        rms_norm_eps: float = 1e-6,
        mask_token_id: int = 151666,
        causal: bool = False,
        hidden_act: str = "silu",
        tie_word_embeddings: bool = False,
        **kwargs,
    ):
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim or hidden_size // num_attention_heads
        self.vocab_size = vocab_size
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.mask_token_id = mask_token_id
        self.causal = causal
        self.hidden_act = hidden_act
        kwargs.pop("auto_map", None)  # remote code is never used: sinkprune ships the classes
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)


#: field -> test for values the official code accepts that sinkprune does not implement
DREAM_UNSUPPORTED = {
    "rope_scaling": lambda v: v is not None,
    "rope_parameters": lambda v: v is not None and v.get("rope_type", "default") != "default",
    "use_sliding_window": lambda v: bool(v),
    "hidden_act": lambda v: v not in ACT2FN,
}


class DreamAttention(nn.Module):
    def __init__(self, cfg: DreamConfig):
        super().__init__()
        d, hd = cfg.hidden_size, cfg.head_dim
        self.n_heads, self.n_kv_heads, self.head_dim = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            hd,
        )
        self.q_proj = nn.Linear(d, self.n_heads * hd, bias=True)
        self.k_proj = nn.Linear(d, self.n_kv_heads * hd, bias=True)
        self.v_proj = nn.Linear(d, self.n_kv_heads * hd, bias=True)
        self.o_proj = nn.Linear(self.n_heads * hd, d, bias=False)


class DreamMLP(nn.Module):
    def __init__(self, cfg: DreamConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)
        self.act_fn = ACT2FN[cfg.hidden_act]


class DreamBlock(nn.Module):
    def __init__(self, cfg: DreamConfig):
        super().__init__()
        self.causal = cfg.causal
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = DreamAttention(cfg)
        self.mlp = DreamMLP(cfg)

    def forward(self, x, cos, sin, mass_chunk=None):
        B, T, _ = x.shape
        at = self.self_attn
        h = self.input_layernorm(x)
        q = at.q_proj(h).view(B, T, at.n_heads, at.head_dim).transpose(1, 2)
        k = at.k_proj(h).view(B, T, at.n_kv_heads, at.head_dim).transpose(1, 2)
        v = at.v_proj(h).view(B, T, at.n_kv_heads, at.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        a, mass = attention(q, k, v, self.causal, mass_chunk)
        x = x + at.o_proj(a.transpose(1, 2).reshape(B, T, -1))
        h = self.post_attention_layernorm(x)
        m = self.mlp
        x = x + m.down_proj(m.act_fn(m.gate_proj(h)) * m.up_proj(h))
        return x, mass


class DreamBackbone(nn.Module):
    def __init__(self, cfg: DreamConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DreamBlock(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class DreamModel(TransformerLMMixin, PreTrainedModel):
    config_class = DreamConfig
    base_model_prefix = "model"
    _no_split_modules = ["DreamBlock"]
    _supports_sdpa = True
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}  # tie_word_embeddings

    def __init__(self, config: DreamConfig):
        check_supported(config, DREAM_UNSUPPORTED, "dream")
        super().__init__(config)
        self.model = DreamBackbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.layers

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.embed_tokens(input_ids)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.model.norm(h))
