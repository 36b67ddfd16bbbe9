"""Model-config fields of LLaDA-family and Dream-family checkpoints: honoured or refused.

Each honoured field: a tiny checkpoint with the field set is saved, reloaded with
`sinkprune.models.load_model`, and its logits are compared with a forward written here by hand
from the saved tensors, following the official modelling code (GSAI-ML `modeling_llada.py`,
Dream-org `modeling_dream.py`). Each field value the code does not implement is refused with an
error naming the field, never silently ignored.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from sinkprune.models import DreamConfig, DreamModel, LLaDAConfig, LLaDAModelLM, load_model
from sinkprune.models.common import ModelConfigError

V, T = 61, 12
LLADA = dict(d_model=32, n_layers=2, n_heads=4, mlp_hidden_size=48, vocab_size=V,
             max_sequence_length=32, rope_theta=10000.0, mask_token_id=60)  # fmt: skip
DREAM = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=V, max_position_embeddings=32,
             rope_theta=10000.0, mask_token_id=60)  # fmt: skip


# --------------------------------------------------------- hand-written forward ---
def rope(x: torch.Tensor, theta: float) -> torch.Tensor:
    """Half-split rotary embedding of (B, H, T, D), as both official codes apply it."""
    d = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, d, 2).float() / d)
    ang = torch.arange(x.shape[2]).float()[:, None] * inv[None, :]
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def attend(q, k, v) -> torch.Tensor:
    """Bidirectional softmax attention with KV heads repeated for GQA / MQA."""
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    return w @ v


def linear(sd: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    y = x @ sd[f"{name}.weight"].T
    return y + sd[f"{name}.bias"] if f"{name}.bias" in sd else y


def llada_norm(sd: dict, name: str, x: torch.Tensor, cfg: dict) -> torch.Tensor:
    kind = cfg.get("layer_norm_type", "rms")
    w, b = sd.get(f"{name}.weight"), sd.get(f"{name}.bias")
    if kind in ("default", "low_precision"):
        mu = x.mean(-1, keepdim=True)
        y = (x - mu) / torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + 1e-5)
    else:
        y = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + cfg.get("rms_norm_eps", 1e-5))
    if w is not None:
        y = y * (1 + w) if kind == "gemma_rms" else y * w
    return y + b if b is not None else y


def llada_reference(sd: dict, cfg: dict, ids: torch.Tensor) -> torch.Tensor:
    """LLaDAModel.forward of the official code for a `block_type: llama` model, in fp32."""
    d, H = cfg["d_model"], cfg["n_heads"]
    kv = 1 if cfg.get("multi_query_attention") else cfg.get("n_kv_heads") or H
    hd = d // H
    act = {"silu": F.silu, "gelu": F.gelu, "relu": F.relu}[cfg.get("activation_type", "silu")]
    x = sd["model.transformer.wte.weight"][ids]
    if cfg.get("input_emb_norm"):
        x = x * d**0.5
    B = ids.shape[0]
    for i in range(cfg["n_layers"]):
        p = f"model.transformer.blocks.{i}"
        h = llada_norm(sd, f"{p}.attn_norm", x, cfg)
        q = linear(sd, f"{p}.q_proj", h).view(B, T, H, hd).transpose(1, 2)
        k = linear(sd, f"{p}.k_proj", h).view(B, T, kv, hd).transpose(1, 2)
        v = linear(sd, f"{p}.v_proj", h).view(B, T, kv, hd).transpose(1, 2)
        q, k = rope(q, cfg["rope_theta"]), rope(k, cfg["rope_theta"])
        a = attend(q, k, v).transpose(1, 2).reshape(B, T, d)
        x = x + linear(sd, f"{p}.attn_out", a)
        h = llada_norm(sd, f"{p}.ff_norm", x, cfg)
        g = act(linear(sd, f"{p}.ff_proj", h)) * linear(sd, f"{p}.up_proj", h)
        x = x + linear(sd, f"{p}.ff_out", g)
    x = llada_norm(sd, "model.transformer.ln_f", x, cfg)
    if cfg.get("weight_tying"):
        logits = x @ sd["model.transformer.wte.weight"].T
    else:
        logits = linear(sd, "model.transformer.ff_out", x)
    if cfg.get("scale_logits"):
        logits = logits * (1 / math.sqrt(d))
    return logits


def dream_reference(sd: dict, cfg: dict, ids: torch.Tensor) -> torch.Tensor:
    """DreamModel.forward of the official code (Qwen2 layers, bidirectional), in fp32."""
    d, H, kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps = d // H, cfg.get("rms_norm_eps", 1e-6)
    act = {"silu": F.silu, "gelu": F.gelu, "relu": F.relu}[cfg.get("hidden_act", "silu")]

    def rms(name, x):
        return sd[f"{name}.weight"] * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    x = sd["model.embed_tokens.weight"][ids]
    B = ids.shape[0]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        h = rms(f"{p}.input_layernorm", x)
        q = linear(sd, f"{p}.self_attn.q_proj", h).view(B, T, H, hd).transpose(1, 2)
        k = linear(sd, f"{p}.self_attn.k_proj", h).view(B, T, kv, hd).transpose(1, 2)
        v = linear(sd, f"{p}.self_attn.v_proj", h).view(B, T, kv, hd).transpose(1, 2)
        q, k = rope(q, cfg["rope_theta"]), rope(k, cfg["rope_theta"])
        a = attend(q, k, v).transpose(1, 2).reshape(B, T, d)
        x = x + linear(sd, f"{p}.self_attn.o_proj", a)
        h = rms(f"{p}.post_attention_layernorm", x)
        g = act(linear(sd, f"{p}.mlp.gate_proj", h)) * linear(sd, f"{p}.mlp.up_proj", h)
        x = x + linear(sd, f"{p}.mlp.down_proj", g)
    x = rms("model.norm", x)
    head = "model.embed_tokens" if cfg.get("tie_word_embeddings") else "lm_head"
    return x @ sd[f"{head}.weight"].T


# ------------------------------------------------------------------ helpers ---
def save_tiny(model_cls, config, tmp_path):
    """A randomly filled tiny checkpoint (every weight, bias and norm away from its init)."""
    torch.manual_seed(0)
    model = model_cls(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_f" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p) if name.endswith("weight") else p.normal_())
            else:
                p.normal_(0, 0.3 if name.endswith("bias") else 0.2)
    model.save_pretrained(tmp_path)
    return load_file(str(tmp_path / "model.safetensors"))


def ids() -> torch.Tensor:
    return torch.randint(0, V - 1, (2, T), generator=torch.Generator().manual_seed(3))


LLADA_FIELDS = {
    "plain": {},
    "weight_tying": {"weight_tying": True},
    "include_bias": {"include_bias": True},
    "include_qkv_bias": {"include_qkv_bias": True},
    "include_bias_no_norm_bias": {"include_bias": True, "bias_for_layer_norm": False},
    "bias_for_layer_norm": {"bias_for_layer_norm": True},
    "layer_norm_without_affine": {"layer_norm_with_affine": False},
    "gemma_rms": {"layer_norm_type": "gemma_rms"},
    "layer_norm_default": {"layer_norm_type": "default", "include_bias": True},
    "scale_logits": {"scale_logits": True},
    "input_emb_norm": {"input_emb_norm": True},
    "gelu": {"activation_type": "gelu"},
    "relu": {"activation_type": "relu"},
    "multi_query_attention": {"multi_query_attention": True, "n_kv_heads": None},
    "mlp_ratio": {"mlp_hidden_size": None, "mlp_ratio": 2},
    "tied_and_scaled": {"weight_tying": True, "scale_logits": True, "include_qkv_bias": True},
}


@pytest.mark.parametrize("fields", list(LLADA_FIELDS.values()), ids=list(LLADA_FIELDS))
def test_llada_field_round_trips_and_matches_hand_forward(fields, tmp_path):
    cfg = {**LLADA, **fields}
    saved = save_tiny(LLaDAModelLM, LLaDAConfig(**cfg), tmp_path)
    on_disk = json.loads((tmp_path / "config.json").read_text())
    for field, value in fields.items():
        if value is not None and field != "n_kv_heads":
            assert on_disk[field] == value, field
    model = load_model(tmp_path)
    with torch.no_grad():
        got = model(ids()).logits
    ref_cfg = {**cfg, "n_kv_heads": on_disk["n_kv_heads"]}
    expected = llada_reference(saved, ref_cfg, ids())
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_llada_fields_change_the_tensors_they_should(tmp_path):
    """The checkpoint itself holds what each field implies (names as in the official code)."""

    def names(**fields) -> set[str]:
        return set(save_tiny(LLaDAModelLM, LLaDAConfig(**LLADA, **fields), tmp_path))

    plain = names()
    assert "model.transformer.ff_out.weight" in plain
    assert "model.transformer.ff_out.weight" not in names(weight_tying=True)
    biased = names(include_bias=True) - plain
    assert "model.transformer.ff_out.bias" in biased  # the output head's bias
    assert "model.transformer.blocks.0.attn_out.bias" in biased
    assert "model.transformer.blocks.0.attn_norm.bias" in biased  # bias_for_layer_norm=None
    qkv = names(include_qkv_bias=True) - plain
    assert qkv == {f"model.transformer.blocks.{i}.{p}_proj.bias" for i in (0, 1) for p in "qkv"}
    no_affine = plain - names(layer_norm_with_affine=False)
    assert no_affine == {n for n in plain if "norm" in n or "ln_f" in n}


@pytest.mark.parametrize(
    "fields",
    [
        {"weight_tying": True},
        {"scale_logits": True},
        {"include_bias": True},
        {"input_emb_norm": True},
        {"layer_norm_type": "gemma_rms"},
    ],  # fmt: skip
    ids=["tying", "scale", "bias", "emb_norm", "gemma"],
)
def test_each_llada_field_matters(fields, tmp_path):
    """Turning a field off in the hand forward changes the logits: it is not ignored."""
    cfg = {**LLADA, **fields}
    saved = save_tiny(LLaDAModelLM, LLaDAConfig(**cfg), tmp_path)
    with torch.no_grad():
        got = load_model(tmp_path)(ids()).logits
    if "weight_tying" in fields:  # untied, the head would be a different (random) matrix
        assert "model.transformer.ff_out.weight" not in saved
        return
    off = {**cfg, **{k: "rms" if k == "layer_norm_type" else False for k in fields}}
    stripped = {k: v for k, v in saved.items() if not k.endswith(".bias")}
    changed = llada_reference(stripped if "include_bias" in fields else saved, off, ids())
    assert not torch.allclose(got, changed, atol=1e-3)


DREAM_FIELDS = {
    "plain": {},
    "tie_word_embeddings": {"tie_word_embeddings": True},
    "hidden_act_gelu": {"hidden_act": "gelu"},
    "rope_scaling_null": {"rope_scaling": None},
}


@pytest.mark.parametrize("fields", list(DREAM_FIELDS.values()), ids=list(DREAM_FIELDS))
def test_dream_field_round_trips_and_matches_hand_forward(fields, tmp_path):
    cfg = {**DREAM, **fields}
    saved = save_tiny(DreamModel, DreamConfig(**cfg), tmp_path)
    if cfg.get("tie_word_embeddings"):
        assert "lm_head.weight" not in saved
    model = load_model(tmp_path)
    with torch.no_grad():
        got = model(ids()).logits
    torch.testing.assert_close(got, dream_reference(saved, cfg, ids()), rtol=1e-4, atol=1e-4)


def test_dream_tied_head_in_the_file_must_equal_the_embedding(tmp_path):
    """tie_word_embeddings with a different lm_head stored: refuse rather than pick one."""
    save_tiny(DreamModel, DreamConfig(**DREAM), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "tie_word_embeddings": True}))
    with pytest.raises(Exception, match="tie_word_embeddings|lm_head"):
        load_model(tmp_path)


REFUSED = [
    ("llada", "block_type", "sequential"),
    ("llada", "rope", False),
    ("llada", "alibi", True),
    ("llada", "attention_layer_norm", True),
    ("llada", "clip_qkv", 8.0),
    ("llada", "rope_full_precision", False),
    ("llada", "block_group_size", 2),
    ("llada", "layer_norm_type", "rmsnorm_v2"),
    ("llada", "activation_type", "swiglu"),
    ("llada", "yarn", True),
    ("llada", "rope_scaling", {"type": "linear", "factor": 2.0}),
    ("dream", "rope_scaling", {"type": "linear", "factor": 2.0}),
    ("dream", "rope_scaling", {"rope_type": "yarn", "factor": 4.0}),
    ("dream", "use_sliding_window", True),
    ("dream", "hidden_act", "not_an_activation"),
]


@pytest.mark.parametrize(("family", "field", "value"), REFUSED)
def test_unimplemented_field_values_are_refused_naming_the_field(family, field, value, tmp_path):
    cls, cfg_cls, base = (
        (LLaDAModelLM, LLaDAConfig, LLADA)
        if family == "llada"
        else (DreamModel, DreamConfig, DREAM)
    )
    save_tiny(cls, cfg_cls(**base), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, field: value}))
    # refused by sinkprune (naming the field) or already by transformers' config check (yarn
    # without its keys), re-raised as ModelConfigError naming the file
    with pytest.raises(ModelConfigError, match=f"config.json field {field}=|config.json: .*rope"):
        load_model(tmp_path)


def test_contradicting_multi_query_attention_is_refused():
    with pytest.raises(ModelConfigError, match="multi_query_attention"):
        LLaDAConfig(**{**LLADA, "n_kv_heads": 4, "multi_query_attention": True})


def test_shipped_reference_configs_load_as_they_are():
    """The real LLaDA-8B and Dream-7B config.json carry only honoured / harmless values."""
    from pathlib import Path

    fixtures = Path(__file__).parent / "fixtures"
    for name, cls, cfg_cls in (
        ("llada-8b-base.config.json", LLaDAModelLM, LLaDAConfig),
        ("dream-v0-base-7b.config.json", DreamModel, DreamConfig),
    ):
        cfg = cfg_cls.from_dict(json.loads((fixtures / name).read_text()))
        with torch.device("meta"):
            cls(cfg)  # check_supported passes
