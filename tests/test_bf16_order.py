"""bf16 casting order of the official code (issue #15, deviation 4), on CPU.

With bf16 weights the same ops in a different precision order round differently; these tests
write the official order out by hand (GSAI-ML `modeling_llada.py`, Dream-org `modeling_dream.py`
and the release's attention-mass and ω hooks) and require sinkprune's bf16 results to equal it:
the logits bit for bit, the mass up to the fp32 softmax's last bits, the ω-scaled statistics
bit for bit. Each test also checks that the previous fp32 order gives a different answer, so the
comparison can fail.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sinkprune.models import DreamConfig, DreamModel, LLaDAConfig, LLaDAModelLM, get_adapter
from sinkprune.models.common import column_mass
from sinkprune.pruning.stats import Hessian, SummedNorm

BF16 = torch.bfloat16
V = 61


def tiny(family: str):
    torch.manual_seed(0)
    if family == "llada":
        cfg = LLaDAConfig(d_model=64, n_layers=2, n_heads=4, mlp_hidden_size=96, vocab_size=V,
                          max_sequence_length=32, rope_theta=10000.0, mask_token_id=60)  # fmt: skip
        model = LLaDAModelLM(cfg)
    else:
        cfg = DreamConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, vocab_size=V,
                          max_position_embeddings=32, rope_theta=10000.0,
                          mask_token_id=60)  # fmt: skip
        model = DreamModel(cfg)
    with torch.no_grad():  # norm weights away from 1 so that their multiply rounds
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.normal_(1.0, 0.3) if "norm" in name else p.normal_(0, 0.1)
    return model.to(BF16).eval()


# ------------------------------------------------------- the official order ---
def rms(x, w, eps, weight_in_fp32=False):
    """RMSLayerNorm / Qwen2RMSNorm: normalise in fp32, cast back, multiply in the weight's dtype.
    `weight_in_fp32`: sinkprune's former order (multiply in fp32, one final rounding)."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    if weight_in_fp32:
        return (h * w.float()).to(x.dtype)
    return w * h.to(x.dtype)


def tables(d, n, theta):
    inv = 1.0 / theta ** (torch.arange(0, d, 2).float() / d)
    ang = torch.einsum("i,j->ij", torch.arange(n).float(), inv)
    emb = torch.cat([ang, ang], -1)
    return emb.cos(), emb.sin()


def half_rotate(x):
    d = x.shape[-1]
    return torch.cat([-x[..., d // 2 :], x[..., : d // 2]], -1)


def official_llada_logits(model, ids, weight_in_fp32=False):
    sd, cfg = dict(model.state_dict()), model.config
    pre = "model.transformer."
    x = sd[pre + "wte.weight"][ids]
    B, T = ids.shape
    hd = cfg.d_model // cfg.n_heads
    cos, sin = tables(hd, T, cfg.rope_theta)
    for i in range(cfg.n_layers):
        b = f"{pre}blocks.{i}."
        h = rms(x, sd[b + "attn_norm.weight"], cfg.rms_norm_eps, weight_in_fp32)
        q, k, v = (F.linear(h, sd[b + n + ".weight"]) for n in ("q_proj", "k_proj", "v_proj"))
        q, k, v = (t.view(B, T, cfg.n_heads, hd).transpose(1, 2) for t in (q, k, v))
        # rope_full_precision: rotate in fp32, cast back
        q = (q.float() * cos + half_rotate(q.float()) * sin).to(BF16)
        k = (k.float() * cos + half_rotate(k.float()) * sin).to(BF16)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=False)
        x = x + F.linear(a.transpose(1, 2).reshape(B, T, -1), sd[b + "attn_out.weight"])
        h = rms(x, sd[b + "ff_norm.weight"], cfg.rms_norm_eps, weight_in_fp32)
        g, u = F.linear(h, sd[b + "ff_proj.weight"]), F.linear(h, sd[b + "up_proj.weight"])
        x = x + F.linear(F.silu(g) * u, sd[b + "ff_out.weight"])
    x = rms(x, sd[pre + "ln_f.weight"], cfg.rms_norm_eps, weight_in_fp32)
    return F.linear(x, sd[pre + "ff_out.weight"])


def official_dream_logits(model, ids, rope_in_fp32=False, weight_in_fp32=False):
    sd, cfg = dict(model.state_dict()), model.config
    x = sd["model.embed_tokens.weight"][ids]
    B, T = ids.shape
    nh, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    hd = cfg.hidden_size // nh
    cos, sin = tables(hd, T, cfg.rope_theta)
    eps = cfg.rms_norm_eps

    def rot(t):  # Qwen2: tables cast to the activations' dtype, rotation in bf16
        if rope_in_fp32:
            return (t.float() * cos + half_rotate(t.float()) * sin).to(t.dtype)
        return t * cos.to(t.dtype) + half_rotate(t) * sin.to(t.dtype)

    for i in range(cfg.num_hidden_layers):
        b = f"model.layers.{i}."
        h = rms(x, sd[b + "input_layernorm.weight"], eps, weight_in_fp32)
        q, k, v = (
            F.linear(h, sd[f"{b}self_attn.{n}.weight"], sd[f"{b}self_attn.{n}.bias"])
            for n in ("q_proj", "k_proj", "v_proj")
        )
        q = rot(q.view(B, T, nh, hd).transpose(1, 2))
        k = rot(k.view(B, T, nkv, hd).transpose(1, 2)).repeat_interleave(nh // nkv, 1)
        v = v.view(B, T, nkv, hd).transpose(1, 2).repeat_interleave(nh // nkv, 1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=False)
        x = x + F.linear(a.transpose(1, 2).reshape(B, T, -1), sd[b + "self_attn.o_proj.weight"])
        h = rms(x, sd[b + "post_attention_layernorm.weight"], eps, weight_in_fp32)
        g = F.linear(h, sd[b + "mlp.gate_proj.weight"])
        u = F.linear(h, sd[b + "mlp.up_proj.weight"])
        x = x + F.linear(F.silu(g) * u, sd[b + "mlp.down_proj.weight"])
    x = rms(x, sd["model.norm.weight"], eps, weight_in_fp32)
    return F.linear(x, sd["lm_head.weight"])


def ids(T=24):
    return torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------- tests ---
@torch.no_grad()
def test_llada_bf16_logits_equal_the_official_order_bit_for_bit():
    model, x = tiny("llada"), ids()
    ours = model(x).logits
    assert ours.dtype == BF16
    assert torch.equal(ours, official_llada_logits(model, x))
    assert not torch.equal(ours, official_llada_logits(model, x, weight_in_fp32=True))


@torch.no_grad()
def test_dream_bf16_logits_equal_the_official_order_bit_for_bit():
    model, x = tiny("dream"), ids()
    ours = model(x).logits
    assert torch.equal(ours, official_dream_logits(model, x))
    assert not torch.equal(ours, official_dream_logits(model, x, rope_in_fp32=True))
    assert not torch.equal(ours, official_dream_logits(model, x, weight_in_fp32=True))


def official_mass(q, k, scores_in_fp32=False):
    """The release's capture hook: matmul and /√d in the activations' dtype, softmax in fp32,
    .sum(dim=2).sum(dim=1)."""
    if scores_in_fp32:
        q, k = q.float(), k.float()
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    return torch.softmax(scores.float(), dim=-1).sum(dim=2).sum(dim=1)


@pytest.mark.parametrize("chunk", [64, 7])
def test_bf16_attention_mass_follows_the_release_capture(chunk):
    g = torch.Generator().manual_seed(0)
    q = (torch.randn(2, 4, 64, 32, generator=g) * 2).to(BF16)
    k = (torch.randn(2, 4, 64, 32, generator=g) * 2).to(BF16)
    ours, want = column_mass(q, k, False, chunk), official_mass(q, k)
    # equal up to the fp32 softmax's rounding (its exp and its division differ in the last bits)
    assert torch.allclose(ours, want, rtol=2e-6, atol=2e-6)
    old = official_mass(q, k, scores_in_fp32=True)
    assert (old - want).abs().max() > 100 * (ours - want).abs().max()


@torch.no_grad()
def test_bf16_model_mass_uses_the_bf16_scores():
    """Through the model: the adapter's per-layer mass in bf16 sums to H·T and differs from the
    fp32-scores capture of the same bf16 q, k (layer 0, computed here)."""
    model, x = tiny("llada"), ids(16)
    ad = get_adapter(model)
    mass = ad.attention_mass(x, chunk_size=16)
    H, T = ad.n_heads, x.shape[1]
    assert torch.allclose(mass.sum(-1), torch.full_like(mass.sum(-1), H * T), rtol=1e-5)
    blk = model.blocks[0]
    h = blk.attn_norm(model.embed(x))
    q = blk.q_proj(h).view(2, T, H, -1).transpose(1, 2)
    k = blk.k_proj(h).view(2, T, H, -1).transpose(1, 2)
    cos, sin = model.rope(T, x.device)
    from sinkprune.models.common import apply_rope

    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    assert torch.allclose(mass[0], official_mass(q, k), rtol=2e-6, atol=2e-6)


def test_omega_scaling_runs_in_the_activation_dtype():
    """sink: ‖(x·ω)_c‖ with ω cast to bf16 and the product in bf16 (then fp32), as the release's
    hook; sink_sgpt's Hessian rows the same way."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 20, 16, generator=g).to(BF16)
    omega = 1.0 - torch.rand(3, 20, generator=g)  # fp32, like 1 − s
    want_rows = (x * omega.unsqueeze(-1).to(BF16)).float()
    norm = SummedNorm(16)
    norm.add(x, omega)
    want = sum(torch.norm(want_rows[b], p=2, dim=0) for b in range(3))
    assert torch.equal(norm.value, want)
    old_rows = x.float() * omega.unsqueeze(-1)
    assert not torch.equal(want_rows, old_rows)
    hess = Hessian(16)
    hess.add(x, omega)
    flat = math.sqrt(2 / 3) * want_rows.reshape(-1, 16)
    assert torch.allclose(hess.value, flat.T @ flat, rtol=1e-6, atol=1e-6)


@torch.no_grad()
def test_fp32_forward_is_unchanged_by_the_casting_order():
    """In fp32 every cast is a no-op: the official order and the former one agree exactly."""
    model = tiny("dream").float()
    x = ids()
    ref = official_dream_logits(model, x)
    assert torch.equal(model(x).logits, ref)
    assert torch.equal(ref, official_dream_logits(model, x, rope_in_fp32=True, weight_in_fp32=True))
