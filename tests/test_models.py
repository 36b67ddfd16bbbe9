"""Model layer (sinkprune.models): real configs, real parameter names/shapes, loading, masking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoModel

from sinkprune.models import (
    DreamConfig,
    DreamModel,
    LLaDAConfig,
    LLaDAModelLM,
    get_adapter,
    load_model,
)

FIXTURES = Path(__file__).parent / "fixtures"
LLADA_JSON = FIXTURES / "llada-8b-base.config.json"
DREAM_JSON = FIXTURES / "dream-v0-base-7b.config.json"


def fixture(path: Path) -> dict:
    return json.loads(path.read_text())


# Parameter names of the real checkpoints, from shared/reference/README.md.
def llada_names(n_layers: int) -> list[str]:
    names = ["model.transformer.wte.weight"]
    for i in range(n_layers):
        b = f"model.transformer.blocks.{i}"
        names += [f"{b}.{n}.weight" for n in ("attn_norm", "ff_norm")]
        names += [
            f"{b}.{n}.weight"
            for n in ("q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out")
        ]
    return names + ["model.transformer.ln_f.weight", "model.transformer.ff_out.weight"]


def dream_names(n_layers: int) -> list[str]:
    names = ["model.embed_tokens.weight"]
    for i in range(n_layers):
        b = f"model.layers.{i}"
        names += [f"{b}.{n}.weight" for n in ("input_layernorm", "post_attention_layernorm")]
        names += [f"{b}.self_attn.{p}_proj.{w}" for p in "qkv" for w in ("weight", "bias")]
        names += [f"{b}.self_attn.o_proj.weight"]
        names += [f"{b}.mlp.{p}_proj.weight" for p in ("gate", "up", "down")]
    return names + ["model.norm.weight", "lm_head.weight"]


def tiny_llada(**kw) -> LLaDAModelLM:
    cfg = dict(d_model=32, n_layers=2, n_heads=4, mlp_hidden_size=48, vocab_size=61,
               max_sequence_length=32, rope_theta=10000.0, mask_token_id=60)  # fmt: skip
    cfg.update(kw)
    torch.manual_seed(0)
    return LLaDAModelLM(LLaDAConfig(**cfg)).eval()


def tiny_dream(**kw) -> DreamModel:
    cfg = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, vocab_size=61, max_position_embeddings=32,
               rope_theta=10000.0, mask_token_id=60)  # fmt: skip
    cfg.update(kw)
    torch.manual_seed(0)
    model = DreamModel(DreamConfig(**cfg)).eval()
    with torch.no_grad():  # non-zero biases so that they matter in the checks below
        for block in model.blocks:
            for p in ("q_proj", "k_proj", "v_proj"):
                getattr(block.self_attn, p).bias.normal_(0, 0.1)
    return model


# ------------------------------------------------------------------ configs ---
def test_llada_config_parses_real_fields():
    cfg = LLaDAConfig.from_dict(fixture(LLADA_JSON))
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads) == (4096, 32, 32, 32)
    assert cfg.head_dim == 128
    assert cfg.mlp_hidden_size == 12288
    assert cfg.vocab_size == cfg.embedding_size == 126464
    assert cfg.max_sequence_length == 4096
    assert cfg.rope_theta == 500000.0
    assert cfg.rms_norm_eps == 1e-5
    assert cfg.mask_token_id == 126336
    assert cfg.include_bias is False and cfg.causal is False
    assert cfg.model_type == "llada"
    assert not hasattr(cfg, "auto_map") and "auto_map" not in cfg.to_dict()


def test_dream_config_parses_real_fields():
    cfg = DreamConfig.from_dict(fixture(DREAM_JSON))
    assert (cfg.hidden_size, cfg.num_hidden_layers) == (3584, 28)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (28, 4, 128)
    assert cfg.intermediate_size == 18944
    assert cfg.vocab_size == 152064
    assert cfg.max_position_embeddings == 131072
    assert cfg.rope_theta == 1000000.0
    assert cfg.rms_norm_eps == 1e-6
    assert cfg.mask_token_id == 151666
    assert cfg.causal is False and cfg.tie_word_embeddings is False
    assert not hasattr(cfg, "auto_map") and "auto_map" not in cfg.to_dict()


# ----------------------------------------------- real names and shapes (meta) ---
def test_llada_8b_parameter_names_and_shapes():
    d, mlp, vocab = 4096, 12288, 126464
    expected = {"model.transformer.wte.weight": (vocab, d)}
    b = "model.transformer.blocks.0"
    expected.update({f"{b}.attn_norm.weight": (d,), f"{b}.ff_norm.weight": (d,)})
    expected.update({f"{b}.{n}.weight": (d, d) for n in ("q_proj", "k_proj", "v_proj", "attn_out")})
    expected.update({f"{b}.ff_proj.weight": (mlp, d), f"{b}.up_proj.weight": (mlp, d)})
    expected[f"{b}.ff_out.weight"] = (d, mlp)
    expected["model.transformer.ln_f.weight"] = (d,)
    expected["model.transformer.ff_out.weight"] = (vocab, d)
    assert sorted(expected) == sorted(llada_names(1))

    cfg = LLaDAConfig.from_dict({**fixture(LLADA_JSON), "n_layers": 1})
    with torch.device("meta"):
        model = LLaDAModelLM(cfg)
    got = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert got == expected


def test_llada_8b_parameter_count():
    """All 32 blocks: 8.0B parameters (LLaDA-8B)."""
    d, mlp, vocab, n_layers = 4096, 12288, 126464, 32
    per_block = 4 * d * d + 3 * d * mlp + 2 * d
    with torch.device("meta"):
        model = LLaDAModelLM(LLaDAConfig.from_dict(fixture(LLADA_JSON)))
    assert sum(p.numel() for p in model.parameters()) == n_layers * per_block + 2 * vocab * d + d
    assert len(get_adapter(model).blocks) == n_layers


def test_dream_7b_parameter_names_and_shapes():
    d, hd, heads, kv, mlp, vocab = 3584, 128, 28, 4, 18944, 152064
    b = "model.layers.0"
    expected = {
        "model.embed_tokens.weight": (vocab, d),
        f"{b}.input_layernorm.weight": (d,),
        f"{b}.post_attention_layernorm.weight": (d,),
        f"{b}.self_attn.q_proj.weight": (heads * hd, d),
        f"{b}.self_attn.q_proj.bias": (heads * hd,),
        f"{b}.self_attn.k_proj.weight": (kv * hd, d),
        f"{b}.self_attn.k_proj.bias": (kv * hd,),
        f"{b}.self_attn.v_proj.weight": (kv * hd, d),
        f"{b}.self_attn.v_proj.bias": (kv * hd,),
        f"{b}.self_attn.o_proj.weight": (d, heads * hd),
        f"{b}.mlp.gate_proj.weight": (mlp, d),
        f"{b}.mlp.up_proj.weight": (mlp, d),
        f"{b}.mlp.down_proj.weight": (d, mlp),
        "model.norm.weight": (d,),
        "lm_head.weight": (vocab, d),
    }
    assert sorted(expected) == sorted(dream_names(1))
    cfg = DreamConfig.from_dict({**fixture(DREAM_JSON), "num_hidden_layers": 1})
    with torch.device("meta"):
        model = DreamModel(cfg)
    got = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert got == expected


# ------------------------------------------------------------- round trips ---
@pytest.mark.parametrize("make", [tiny_llada, tiny_dream], ids=["llada", "dream"])
def test_save_load_round_trip(make, tmp_path):
    model = make()
    x = torch.randint(0, 60, (2, 12))
    model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert "auto_map" not in cfg
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        names = sorted(f.keys())
    expected = llada_names(2) if isinstance(model, LLaDAModelLM) else dream_names(2)
    assert names == sorted(expected)

    for loaded in (load_model(tmp_path), AutoModel.from_pretrained(tmp_path).eval()):
        assert type(loaded) is type(model)
        for (n1, p1), (n2, p2) in zip(
            model.state_dict().items(), loaded.state_dict().items(), strict=True
        ):
            assert n1 == n2 and torch.equal(p1, p2)
        with torch.no_grad():
            assert torch.equal(loaded(x).logits, model(x).logits)


def test_real_layout_checkpoint_with_auto_map_loads_without_remote_code(tmp_path):
    """A checkpoint written with the real names and a real-style config.json (auto_map) loads."""
    cfg = {**fixture(LLADA_JSON), "d_model": 16, "n_heads": 2, "n_kv_heads": 2, "n_layers": 2,
           "mlp_hidden_size": 24, "vocab_size": 40, "embedding_size": 40, "mask_token_id": 39}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    d, mlp, vocab = 16, 24, 40
    shape_of = {"wte": (vocab, d), "attn_norm": (d,), "ff_norm": (d,), "q_proj": (d, d),
                "k_proj": (d, d), "v_proj": (d, d), "attn_out": (d, d), "ff_proj": (mlp, d),
                "up_proj": (mlp, d), "ff_out": (d, mlp), "ln_f": (d,)}  # fmt: skip
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for name in llada_names(2):
        module = name.split(".")[-2]
        shape = (vocab, d) if name == "model.transformer.ff_out.weight" else shape_of[module]
        tensors[name] = torch.randn(shape, generator=g)
    save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})

    for model in (load_model(tmp_path), AutoModel.from_pretrained(tmp_path)):
        assert isinstance(model, LLaDAModelLM)
        state = model.state_dict()
        assert sorted(state) == sorted(tensors)
        for name, t in tensors.items():
            assert torch.equal(state[name], t), name
    assert model.config.mask_token_id == 39 and get_adapter(model).mask_token_id == 39


# ---------------------------------------------------------------- masking ---
def changed_positions(model, T: int = 10, j: int = 6) -> torch.Tensor:
    """Which positions' logits change when only token j changes (bool per position)."""
    x = torch.randint(0, 60, (1, T), generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[0, j] = (x[0, j] + 1) % 60
    with torch.no_grad():
        diff = (model(x).logits - model(y).logits).abs().amax(-1)[0]
    return diff > 1e-6


@pytest.mark.parametrize("make", [tiny_llada, tiny_dream], ids=["llada", "dream"])
def test_causal_model_ignores_future_tokens(make):
    changed = changed_positions(make(causal=True), j=6)
    assert not changed[:6].any() and changed[6:].all()


@pytest.mark.parametrize("make", [tiny_llada, tiny_dream], ids=["llada", "dream"])
def test_bidirectional_model_sees_future_tokens(make):
    changed = changed_positions(make(), j=6)
    assert changed.all()


# -------------------------------------------------------------------- GQA ---
def repeat_kv_rows(w: torch.Tensor, n_kv: int, n_rep: int, head_dim: int) -> torch.Tensor:
    """k/v projection rows of n_kv heads -> n_kv·n_rep heads, query head h reading kv h // n_rep."""
    heads = w.reshape(n_kv, head_dim, *w.shape[1:])
    return heads.repeat_interleave(n_rep, dim=0).reshape(n_kv * n_rep * head_dim, *w.shape[1:])


@pytest.mark.parametrize("causal", [False, True])
def test_gqa_equals_mha_with_repeated_kv_heads(causal):
    gqa = tiny_dream(num_attention_heads=4, num_key_value_heads=2, causal=causal)
    mha = tiny_dream(num_attention_heads=4, num_key_value_heads=4, causal=causal)
    sd = {}
    for name, p in gqa.state_dict().items():
        if ".k_proj." in name or ".v_proj." in name:
            p = repeat_kv_rows(p, n_kv=2, n_rep=2, head_dim=8)
        sd[name] = p
    mha.load_state_dict(sd)
    x = torch.randint(0, 60, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(gqa(x).logits, mha(x).logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            gqa(x, output_attention_mass=True, mass_chunk=4).attention_mass,
            mha(x, output_attention_mass=True, mass_chunk=4).attention_mass,
            rtol=1e-5,
            atol=1e-5,
        )
    ad = get_adapter(gqa)
    assert (ad.n_heads, ad.n_kv_heads, ad.head_dim) == (4, 2, 8)
    assert gqa.blocks[0].self_attn.k_proj.weight.shape == (16, 32)


def test_llada_gqa_runs_with_fewer_kv_heads():
    gqa = tiny_llada(n_heads=4, n_kv_heads=1)
    mha = tiny_llada(n_heads=4, n_kv_heads=4)
    sd = {}
    for name, p in gqa.state_dict().items():
        if name.endswith((".k_proj.weight", ".v_proj.weight")):
            p = repeat_kv_rows(p, n_kv=1, n_rep=4, head_dim=8)
        sd[name] = p
    mha.load_state_dict(sd)
    x = torch.randint(0, 60, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(gqa(x).logits, mha(x).logits, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- adapter ---
def test_dream_mdm_logits_undo_the_shift():
    model = tiny_dream()
    x = torch.randint(0, 60, (2, 7))
    with torch.no_grad():
        raw = model(x).logits
        mdm = get_adapter(model).mdm_logits(x)
    assert torch.equal(mdm[:, 1:], raw[:, :-1])  # logit at j-1 predicts token j
    assert torch.equal(mdm[:, 0], raw[:, 0])


def test_llada_mdm_logits_are_unshifted():
    model = tiny_llada()
    x = torch.randint(0, 60, (2, 7))
    with torch.no_grad():
        assert torch.equal(get_adapter(model).mdm_logits(x), model(x).logits)


@pytest.mark.parametrize("make", [tiny_llada, tiny_dream], ids=["llada", "dream"])
def test_adapter_block_by_block_equals_forward(make):
    model = make()
    ad = get_adapter(model)
    x = torch.randint(0, 60, (2, 11))
    with torch.no_grad():
        h = ad.embed(x)
        masses = []
        for i in range(ad.n_layers):
            h, m = ad.block_forward(i, h, mass=True, chunk_size=3)
            masses.append(m)
        torch.testing.assert_close(ad.head(h), model(x).logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(torch.stack(masses), ad.attention_mass(x, chunk_size=5))
    assert ad.n_layers == 2 and len(ad.linear_names) == 7
    for i in range(ad.n_layers):
        lins = ad.linears(i)
        assert list(lins) == list(ad.linear_names)
        assert all(isinstance(m, torch.nn.Linear) for m in lins.values())
    assert ad.mask_token_id == 60 and ad.causal is False
