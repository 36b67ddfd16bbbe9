"""The family adapter: the one interface pruning, attention and evaluation code talk to.

It hides where the blocks are, what the 7 prunable linears of a block are called, the mask token,
how to run one block on hidden states, Dream's shifted logits, and how to capture attention mass.
"""

from __future__ import annotations

import torch
from torch import nn

FAMILIES = {
    "llada": {
        "linear_names": ("q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"),
        "structure": dict(
            q="q_proj",
            k="k_proj",
            v="v_proj",
            o="attn_out",
            gate="ff_proj",
            up="up_proj",
            down="ff_out",
        ),
        "heads_owner": "",  # the block itself holds n_heads / n_kv_heads
        "config_keys": dict(
            hidden="d_model", n_heads="n_heads", n_kv_heads="n_kv_heads", mlp="mlp_hidden_size"
        ),
        "shifted_logits": False,
    },
    "dream": {
        "linear_names": (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
        ),
        "structure": dict(
            q="self_attn.q_proj",
            k="self_attn.k_proj",
            v="self_attn.v_proj",
            o="self_attn.o_proj",
            gate="mlp.gate_proj",
            up="mlp.up_proj",
            down="mlp.down_proj",
        ),
        "heads_owner": "self_attn",
        "config_keys": dict(
            hidden="hidden_size",
            n_heads="num_attention_heads",
            n_kv_heads="num_key_value_heads",
            mlp="intermediate_size",
        ),
        "shifted_logits": True,
    },
}


class ModelAdapter:
    """Uniform access to a llada- or dream-family model (see docs/architecture.md)."""

    def __init__(self, model: nn.Module, family: str):
        if family not in FAMILIES:
            raise ValueError(f"unknown model family {family!r}; expected one of {sorted(FAMILIES)}")
        self.model = model
        self.family = family
        spec = FAMILIES[family]
        self.linear_names: tuple[str, ...] = spec["linear_names"]
        self.structure: dict[str, str] = spec["structure"]
        self._keys = spec["config_keys"]
        self._heads_owner = spec["heads_owner"]
        self._shifted = spec["shifted_logits"]
        self._rope_cache: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}

    # ------------------------------------------------------------ structure
    @property
    def config(self):
        return self.model.config

    @property
    def mask_token_id(self) -> int:
        return int(self.config.mask_token_id)

    @property
    def causal(self) -> bool:
        return bool(getattr(self.config, "causal", False))

    @property
    def shifted_logits(self) -> bool:
        """Logit i predicts token i+1 (Dream). `mdm_logits` gives position 0 the model's own
        logit there, which predicts token 1: position 0 is never masked or scored."""
        return self._shifted

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def n_heads(self) -> int:
        return int(getattr(self.config, self._keys["n_heads"]))

    @property
    def n_kv_heads(self) -> int:
        return int(getattr(self.config, self._keys["n_kv_heads"]))

    @property
    def head_dim(self) -> int:
        return int(self.config.head_dim)

    @property
    def hidden_size(self) -> int:
        return int(getattr(self.config, self._keys["hidden"]))

    @property
    def mlp_hidden_size(self) -> int:
        return int(getattr(self.config, self._keys["mlp"]))

    @property
    def max_length(self) -> int:
        c = self.config
        return int(getattr(c, "max_sequence_length", None) or c.max_position_embeddings)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.blocks

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def linears(self, i: int) -> dict[str, nn.Linear]:
        block = self.blocks[i]
        return {name: block.get_submodule(name) for name in self.linear_names}

    def set_shape(self, n_heads: int, n_kv_heads: int, mlp_hidden_size: int) -> None:
        """Record new head counts / MLP width in the config and every block (structured pruning)."""
        setattr(self.config, self._keys["n_heads"], n_heads)
        setattr(self.config, self._keys["n_kv_heads"], n_kv_heads)
        setattr(self.config, self._keys["mlp"], mlp_hidden_size)
        for block in self.blocks:
            owner = block.get_submodule(self._heads_owner) if self._heads_owner else block
            owner.n_heads, owner.n_kv_heads = n_heads, n_kv_heads

    # -------------------------------------------------------------- forward
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.embed(input_ids)

    def _rope(self, seq_len: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (seq_len, str(device))
        if key not in self._rope_cache:
            self._rope_cache[key] = self.model.rope(seq_len, device)
        return self._rope_cache[key]

    def block_forward(self, i: int, h: torch.Tensor, mass: bool = False, chunk_size: int = 256):
        """Run block i on hidden states (B, T, d); with mass=True also return its (B, T) mass."""
        cos, sin = self._rope(h.shape[1], h.device)
        out, m = self.blocks[i](h, cos, sin, chunk_size if mass else None)
        return (out, m) if mass else out

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.model.head(h)

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Raw logits as the checkpoint defines them (AR / Dream: position i predicts i+1)."""
        return self.model(input_ids).logits

    def mdm_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits where [:, j] predicts token j (Dream's one-position shift undone)."""
        logits = self.logits(input_ids)
        if self._shifted:
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits

    @torch.no_grad()
    def attention_mass(self, input_ids: torch.Tensor, chunk_size: int = 256) -> torch.Tensor:
        """(L, B, T) fp32 key-column mass per layer (method.md §3); Σ_j = H·T per layer."""
        out = self.model(input_ids, output_attention_mass=True, mass_chunk=chunk_size)
        return out.attention_mass


def family_of(model: nn.Module) -> str:
    from .dream import DreamModel
    from .llada import LLaDAModelLM

    if isinstance(model, LLaDAModelLM):
        return "llada"
    if isinstance(model, DreamModel):
        return "dream"
    raise TypeError(f"not a sinkprune model: {type(model).__name__}")


def get_adapter(model: nn.Module) -> ModelAdapter:
    return ModelAdapter(model, family_of(model))
