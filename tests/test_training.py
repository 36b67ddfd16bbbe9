"""Training of the embedded models (sinkprune.training): objective, schedule, metrics, outputs."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from sinkprune import training
from sinkprune.models import get_adapter, load_model
from sinkprune.tokenizer import load_tokenizer, make_tokenizer, mask_token_id
from sinkprune.training import (
    TrainSpec,
    ar_loss,
    build_model,
    dream_loss,
    encode_file,
    heldout_windows,
    lr_at,
    masked_ce,
    mdm_loss,
    quality_bar,
    resume_file,
    train_model,
    unigram_entropy,
)

WORDS = "one two three four five six seven eight nine ten".split()
ARCH = {"d_model": 32, "n_layers": 2, "n_heads": 2, "mlp_hidden_size": 64,
        "max_sequence_length": 32}  # fmt: skip
TRAIN = {"minutes": 5.0, "max_steps": 40, "batch_size": 16, "seq_len": 32, "lr": 0.01,
         "warmup_steps": 5, "eval_every": 20}  # fmt: skip


class Stub(torch.nn.Module):
    """Returns fixed logits per (position, token); records its input."""

    def __init__(self, T: int, V: int, seed: int = 0):
        super().__init__()
        self.table = torch.randn(T, V, generator=torch.Generator().manual_seed(seed))
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return SimpleNamespace(logits=self.table[: x.shape[1]].expand(x.shape[0], -1, -1))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """A tiny, very predictable corpus and a BPE tokenizer trained on it."""
    root = tmp_path_factory.mktemp("corpus")
    lines = [" ".join(WORDS[i % 10 :] + WORDS[: i % 10]) for i in range(600)]
    (root / "train.txt").write_text("\n".join(lines[:500]) + "\n")
    (root / "valid.txt").write_text("\n".join(lines[500:]) + "\n")
    make_tokenizer(root / "train.txt", root / "tokenizer", 300)
    return {"root": root, "train": root / "train.txt", "valid": root / "valid.txt",
            "tokenizer": root / "tokenizer"}  # fmt: skip


# -------------------------------------------------------------- schedule ---
def test_lr_schedule_warmup_then_cosine_to_floor():
    spec = TrainSpec(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_at(0, spec) == pytest.approx(0.1)
    assert lr_at(9, spec) == pytest.approx(1.0)
    assert lr_at(10, spec) == pytest.approx(1.0)
    assert lr_at(60, spec) == pytest.approx(0.55)  # half-way: floor + (1 - floor)/2
    assert lr_at(110, spec) == pytest.approx(0.1)
    assert lr_at(500, spec) == pytest.approx(0.1)
    values = [lr_at(s, spec) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_train_spec_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown keys"):
        TrainSpec.from_config({"learning_rate": 1e-3})


# ---------------------------------------------------------------- losses ---
def test_mdm_loss_matches_hand_computation():
    B, T, V, mask_id, eps = 4, 6, 11, 10, 1e-3
    x = torch.randint(0, 10, (B, T), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(5)
    replay = torch.Generator().set_state(gen.get_state())
    model = Stub(T, V)
    loss = mdm_loss(model, x, mask_id, gen, eps)

    u = torch.rand(1, generator=replay).item()
    ts = [(u + i / B) % 1.0 for i in range(B)]  # stratified t, each U(0,1)
    draws = torch.rand(B, T, generator=replay)
    expected, seen = 0.0, model.seen[0]
    for b in range(B):
        p = (1 - eps) * ts[b] + eps
        for j in range(T):
            masked = draws[b, j].item() < p
            assert (seen[b, j].item() == mask_id) == masked
            assert masked or seen[b, j] == x[b, j]
            if masked:
                logp = model.table[j].log_softmax(-1)[x[b, j]].item()
                expected += -logp / p
    assert loss.item() == pytest.approx(expected / (B * T), rel=1e-5)


def test_dream_loss_matches_hand_computation():
    """Dream: the same t and mask draws as mdm_loss, position 0 never masked, token j scored
    with the logit at j - 1 (shifted), Σ CE/p over B·(T-1) maskable tokens."""
    B, T, V, mask_id, eps = 4, 6, 11, 10, 1e-3
    x = torch.randint(0, 10, (B, T), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(5)
    replay = torch.Generator().set_state(gen.get_state())
    model = Stub(T, V)
    loss = dream_loss(model, x, mask_id, gen, eps)

    u = torch.rand(1, generator=replay).item()
    ts = [(u + i / B) % 1.0 for i in range(B)]
    draws = torch.rand(B, T, generator=replay)
    expected, seen, n_masked = 0.0, model.seen[0], 0
    for b in range(B):
        p = (1 - eps) * ts[b] + eps
        for j in range(T):
            masked = j > 0 and draws[b, j].item() < p
            assert (seen[b, j].item() == mask_id) == masked
            if masked:
                n_masked += 1
                expected += -model.table[j - 1].log_softmax(-1)[x[b, j]].item() / p
    assert n_masked > 0 and seen[:, 0].tolist() == x[:, 0].tolist()
    assert loss.item() == pytest.approx(expected / (B * (T - 1)), rel=1e-5)


def test_dream_loss_trains_the_shifted_logit():
    """With a real dream model the gradient reaches the logit at j - 1, never the one at j: a
    model whose logits at the last position are cut off gives the same loss."""
    torch.manual_seed(0)
    arch = {"d_model": 16, "n_layers": 1, "n_heads": 4, "n_kv_heads": 2, "mlp_hidden_size": 32,
            "max_sequence_length": 16}  # fmt: skip
    model = build_model(arch, "dlm", 20, 19, family="dream")
    x = torch.randint(0, 19, (3, 10), generator=torch.Generator().manual_seed(1))
    loss = dream_loss(model, x, 19, torch.Generator().manual_seed(2))

    class LastLogitIsNaN(torch.nn.Module):
        def forward(self, ids):
            logits = model(ids).logits.clone()
            logits[:, -1] = float("nan")  # the last logit predicts a token beyond the window
            return SimpleNamespace(logits=logits)

    same = dream_loss(LastLogitIsNaN(), x, 19, torch.Generator().manual_seed(2))
    assert torch.isfinite(loss) and same.item() == pytest.approx(loss.item(), rel=1e-6)


class UniformLogits(torch.nn.Module):
    def __init__(self, V: int):
        super().__init__()
        self.V = V

    def forward(self, x):
        return SimpleNamespace(logits=torch.zeros(*x.shape, self.V))


def test_mdm_loss_is_unbiased_for_the_token_average_ce():
    """E[Σ_masked CE/p]/(B·T) = the per-token CE when every token has the same CE (log V)."""
    B, T, V = 32, 64, 50
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, V - 1, (B, T), generator=gen)
    losses = [mdm_loss(UniformLogits(V), x, V - 1, gen).item() for _ in range(100)]
    assert sum(losses) / len(losses) == pytest.approx(math.log(V), rel=0.03)


def test_dream_loss_is_unbiased_for_the_token_average_ce():
    B, T, V = 32, 64, 50
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, V - 1, (B, T), generator=gen)
    losses = [dream_loss(UniformLogits(V), x, V - 1, gen).item() for _ in range(100)]
    assert sum(losses) / len(losses) == pytest.approx(math.log(V), rel=0.03)


def test_ar_loss_is_next_token_ce():
    B, T, V = 3, 7, 9
    model = Stub(T, V)
    x = torch.randint(0, V, (B, T))
    loss = ar_loss(model, x)
    assert torch.equal(model.seen[0], x[:, :-1])
    expected = sum(
        -model.table[j].log_softmax(-1)[x[b, j + 1]].item() for b in range(B) for j in range(T - 1)
    ) / (B * (T - 1))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------- metrics ---
def test_masked_ce_uses_fixed_nested_masks():
    T, V, mask_id = 16, 13, 12
    windows = torch.randint(0, 12, (10, T), generator=torch.Generator().manual_seed(1))
    model = Stub(T, V)
    ce = masked_ce(model, windows, [0.2, 0.7], mask_id, seed=3, batch_size=4)
    assert ce == pytest.approx(masked_ce(model, windows, [0.2, 0.7], mask_id, 3, batch_size=10))
    low = torch.cat([s == mask_id for s in model.seen[:3]])
    high = torch.cat([s == mask_id for s in model.seen[3:6]])
    assert (high | ~low).all() and high.sum() > low.sum()  # masks at 0.2 ⊂ masks at 0.7
    logp = model.table.log_softmax(-1)
    tok_ce = -logp[torch.arange(T)[None, :].expand_as(windows), windows]
    assert ce[0.2] == pytest.approx(tok_ce[low].mean().item(), rel=1e-6)
    assert ce[0.7] == pytest.approx(tok_ce[high].mean().item(), rel=1e-6)


def test_masked_ce_shifted_scores_token_j_with_the_logit_at_j_minus_1():
    T, V, mask_id = 16, 13, 12
    windows = torch.randint(0, 12, (10, T), generator=torch.Generator().manual_seed(1))
    model = Stub(T, V)
    ce = masked_ce(model, windows, [0.5, 1.0], mask_id, seed=3, batch_size=4, shifted=True)
    for k, t in enumerate((0.5, 1.0)):
        masked = torch.cat([s == mask_id for s in model.seen[3 * k : 3 * k + 3]])
        assert not masked[:, 0].any()  # the first token is never masked
        if t == 1.0:
            assert masked[:, 1:].all()
        logp = model.table.log_softmax(-1)
        prev = (torch.arange(T) - 1).clamp(min=0)[None, :].expand_as(windows)
        tok_ce = -logp[prev, windows]
        assert ce[t] == pytest.approx(tok_ce[masked].mean().item(), rel=1e-6)


def test_build_model_dream_maps_the_arch_keys():
    arch = {"d_model": 32, "n_layers": 3, "n_heads": 8, "n_kv_heads": 4, "mlp_hidden_size": 48,
            "max_sequence_length": 24, "rope_theta": 500.0}  # fmt: skip
    model = build_model(arch, "dlm", 40, 39, family="dream")
    c = model.config
    assert (c.hidden_size, c.num_hidden_layers, c.intermediate_size) == (32, 3, 48)
    assert (c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (8, 4, 4)
    assert (c.max_position_embeddings, c.rope_theta, c.mask_token_id) == (24, 500.0, 39)
    assert c.causal is False and c.tie_word_embeddings is False
    block = get_adapter(model).blocks[0]
    assert block.self_attn.q_proj.bias is not None and block.self_attn.o_proj.bias is None
    assert build_model(arch, "ar", 40, 39, family="dream").config.causal is True
    with pytest.raises(ValueError, match="family"):
        build_model(arch, "dlm", 40, 39, family="gpt")


def test_unigram_entropy_by_hand():
    train = torch.tensor([0, 0, 1])
    heldout = torch.tensor([0, 2])
    # add-one counts [3, 2, 1] / 6
    expected = -(math.log(3 / 6) + math.log(1 / 6)) / 2
    assert unigram_entropy(train, heldout, 3) == pytest.approx(expected)


def test_heldout_windows_are_disjoint_and_deterministic():
    tokens = torch.arange(100)
    w = heldout_windows(tokens, 8, 5)
    assert w.shape == (5, 8)
    assert len(set(w.flatten().tolist())) == 40  # no token twice
    assert torch.equal(w, heldout_windows(tokens, 8, 5))
    assert heldout_windows(tokens, 8, 50).shape == (12, 8)  # capped at what exists


def test_quality_bar_thresholds():
    ok = {"masked_ce": {"0.15": 4.5, "0.5": 4.8, "0.85": 5.0}}
    assert quality_bar("dlm", ok, 5.2)["passed"]
    flat = {"masked_ce": {"0.15": 4.6, "0.5": 4.8, "0.85": 5.0}}  # 8% only
    assert not quality_bar("dlm", flat, 5.2)["ce_t0.15_10pct_below_t0.85"]
    assert not quality_bar("dlm", ok, 5.0)["ce_t0.5_0.3nat_below_unigram"]
    assert quality_bar("ar", {"next_token_ce": 4.0}, 5.2)["passed"]
    assert not quality_bar("ar", {"next_token_ce": 4.3}, 5.2)["passed"]


def test_encode_file_equals_whole_text_encoding(corpus):
    tok = load_tokenizer(corpus["tokenizer"])
    text = corpus["valid"].read_text()
    ids = encode_file(corpus["valid"], tok, lines_per_chunk=7)
    assert ids.tolist() == tok.encode(text, add_special_tokens=False)


# -------------------------------------------------------- whole training ---
@pytest.mark.parametrize("kind", ["dlm", "ar"])
def test_train_model_writes_a_loadable_model_that_learned(kind, corpus, tmp_path):
    out = tmp_path / f"tiny-{kind}"
    metrics = train_model(corpus["train"], corpus["valid"], corpus["tokenizer"], out,
                          kind, ARCH, TRAIN, seed=0, threads=1)  # fmt: skip
    names = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
             "train_metrics.json"}  # fmt: skip
    assert {p.name for p in out.iterdir()} == names
    assert not resume_file(out).exists()
    assert json.loads((out / "train_metrics.json").read_text()) == metrics

    tok = load_tokenizer(out)
    model = load_model(out)
    ad = get_adapter(model)
    assert ad.mask_token_id == mask_token_id(tok)
    assert model.config.vocab_size == len(tok) == metrics["vocab_size"]
    assert ad.causal is (kind == "ar")
    assert metrics["n_params"] == sum(p.numel() for p in model.parameters())

    assert metrics["steps"] == 40 and metrics["stopped_by"] == "max_steps"
    assert metrics["tokens"] == 40 * 16 * 32
    assert [p["step"] for p in metrics["loss_curve"]] == [20, 40]
    unigram = metrics["heldout"]["unigram_entropy"]
    if kind == "dlm":
        ce = metrics["heldout"]["masked_ce"]
        assert set(ce) == {"0.15", "0.5", "0.85"}
        assert ce["0.15"] < ce["0.85"]  # uses context
        assert ce["0.5"] < unigram
    else:
        assert metrics["heldout"]["next_token_ce"] < unigram - 1.0
    assert set(metrics["quality_bar"]) >= {"passed"}


def test_train_model_dream_family(corpus, tmp_path):
    """A GQA dream-family DLM trains with dream_loss, reloads as DreamModel, and learned."""
    out = tmp_path / "tiny-dream"
    arch = {**ARCH, "n_heads": 4, "n_kv_heads": 2}
    metrics = train_model(corpus["train"], corpus["valid"], corpus["tokenizer"], out, "dlm",
                          arch, TRAIN, seed=0, family="dream")  # fmt: skip
    model = load_model(out)
    ad = get_adapter(model)
    assert ad.family == "dream" and metrics["family"] == "dream"
    assert (ad.n_heads, ad.n_kv_heads) == (4, 2)
    ce = metrics["heldout"]["masked_ce"]
    assert ce["0.15"] < ce["0.85"] and ce["0.5"] < metrics["heldout"]["unigram_entropy"]
    # the metrics were computed with the shifted logits: recompute one from the saved model
    tok = load_tokenizer(out)
    windows = heldout_windows(encode_file(corpus["valid"], tok), 32, 256)
    again = masked_ce(model, windows, [0.5], ad.mask_token_id, 0, shifted=True)[0.5]
    assert again == pytest.approx(ce["0.5"], rel=1e-5)


def test_wall_clock_budget_stops_training(corpus, tmp_path):
    train = {**TRAIN, "minutes": 1e-6, "max_steps": 1000}
    metrics = train_model(corpus["train"], corpus["valid"], corpus["tokenizer"], tmp_path / "m",
                          "ar", ARCH, train, seed=0)  # fmt: skip
    assert metrics["stopped_by"] == "minutes" and metrics["steps"] < 1000


def test_killed_run_resumes_to_the_same_weights(corpus, tmp_path, monkeypatch):
    train = {**TRAIN, "max_steps": 12, "eval_every": 4}
    args = (corpus["train"], corpus["valid"], corpus["tokenizer"])
    ref = train_model(*args, tmp_path / "ref", "dlm", ARCH, train, seed=0)

    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)  # checkpoint after every step
    real_windows, calls = training.random_windows, {"n": 0}

    def dies_at_step_8(*a, **k):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt("killed")
        return real_windows(*a, **k)

    monkeypatch.setattr(training, "random_windows", dies_at_step_8)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train_model(*args, out, "dlm", ARCH, train, seed=0)
    assert resume_file(out).is_file() and not (out / "train_metrics.json").exists()
    monkeypatch.setattr(training, "random_windows", real_windows)
    resumed = train_model(*args, out, "dlm", ARCH, train, seed=0)
    assert not resume_file(out).exists()

    a, b = load_file(tmp_path / "ref" / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["heldout"] == ref["heldout"]
    assert [p["train_loss"] for p in resumed["loss_curve"]] == pytest.approx(
        [p["train_loss"] for p in ref["loss_curve"]]
    )


def test_train_model_is_deterministic_under_a_seed(corpus, tmp_path):
    train = {**TRAIN, "max_steps": 6, "eval_every": 3}
    args = (corpus["train"], corpus["valid"], corpus["tokenizer"])
    m1 = train_model(*args, tmp_path / "a", "dlm", ARCH, train, seed=7)
    m2 = train_model(*args, tmp_path / "b", "dlm", ARCH, train, seed=7)
    assert m1["heldout"] == m2["heldout"]
    a, b = (
        load_file(tmp_path / "a" / "model.safetensors"),
        load_file(tmp_path / "b" / "model.safetensors"),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_seq_len_longer_than_the_model_is_an_error(corpus, tmp_path):
    with pytest.raises(ValueError, match="max_sequence_length"):
        train_model(corpus["train"], corpus["valid"], corpus["tokenizer"], tmp_path / "m", "dlm",
                    ARCH, {**TRAIN, "seq_len": 64}, seed=0)  # fmt: skip
