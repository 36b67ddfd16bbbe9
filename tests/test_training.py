"""Training of the embedded models (sinkprune.training): objective, schedule, metrics, outputs."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from sinkprune import training
from sinkprune.config import ConfigError, validate_config
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

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = ROOT / "config" / "config.yaml"
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


def test_train_spec_rejects_an_unknown_loss_weighting():
    with pytest.raises(ValueError, match="train.loss_weighting"):
        TrainSpec.from_config({"loss_weighting": "inverse_t"})


def test_config_validation_refuses_an_unknown_loss_weighting():
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["models"]["tiny-dlm"]["train"]["loss_weighting"] = "inverse_t"
    with pytest.raises(ConfigError, match=r"models\.tiny-dlm\.train\.loss_weighting"):
        validate_config(config, SCHEMA)


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


def test_mdm_loss_masked_mean_is_the_mean_over_windows_of_masked_token_ce():
    B, T, V, mask_id, eps = 5, 6, 11, 10, 1e-3
    x = torch.randint(0, 10, (B, T), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(5)
    replay = torch.Generator().set_state(gen.get_state())
    model = Stub(T, V)
    loss = mdm_loss(model, x, mask_id, gen, eps, weighting="masked_mean")

    u = torch.rand(1, generator=replay).item()
    draws = torch.rand(B, T, generator=replay)
    per_window = []
    for b in range(B):
        p = (1 - eps) * ((u + b / B) % 1.0) + eps
        ces = [
            -model.table[j].log_softmax(-1)[x[b, j]].item()
            for j in range(T)
            if draws[b, j].item() < p
        ]
        if ces:  # a window without masked tokens is left out
            per_window.append(sum(ces) / len(ces))
    assert 0 < len(per_window) < B  # the case of an unmasked window is exercised
    assert loss.item() == pytest.approx(sum(per_window) / len(per_window), rel=1e-5)


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


def test_mdm_loss_weightings_agree_in_expectation_and_masked_mean_varies_less():
    """Both estimate E_t[CE_t]; with a uniform model every masked token costs log V."""
    B, T, V = 8, 64, 50
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, V - 1, (B, T), generator=gen)
    draws = {
        w: torch.tensor([mdm_loss(UniformLogits(V), x, V - 1, gen, weighting=w).item()
                         for _ in range(200)])
        for w in ("elbo", "masked_mean")
    }  # fmt: skip
    assert draws["elbo"].mean().item() == pytest.approx(math.log(V), rel=0.05)
    # every masked token costs log V, so the per-window mean is exactly log V: no variance at all
    assert torch.allclose(draws["masked_mean"], torch.tensor(math.log(V)))
    assert draws["elbo"].std() > 0.05


def test_mdm_loss_rejects_an_unknown_weighting():
    with pytest.raises(ValueError, match="loss_weighting"):
        mdm_loss(UniformLogits(5), torch.zeros(2, 4, dtype=torch.long), 4,
                 torch.Generator(), weighting="nope")  # fmt: skip


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


def test_quality_bar_is_computed_from_the_heldout_metrics():
    ok = {"masked_ce": {"0.15": 3.6, "0.5": 3.9, "0.85": 4.5}}
    bar = quality_bar("dlm", ok, 5.2)
    assert bar["passed"]
    assert bar["ce_t0.15_rel_below_t0.85"]["value"] == pytest.approx(0.2)  # 1 - 3.6/4.5
    assert bar["ce_t0.5_nats_below_unigram"]["value"] == pytest.approx(1.3)
    assert bar["ce_t0.5_nats_below_unigram"]["threshold"] == training.BAR_DLM_T05_VS_UNIGRAM == 1.2
    flat = {"masked_ce": {"0.15": 4.1, "0.5": 3.9, "0.85": 4.5}}  # 8.9% only
    assert not quality_bar("dlm", flat, 5.2)["ce_t0.15_rel_below_t0.85"]["passed"]
    assert not quality_bar("dlm", flat, 5.2)["passed"]
    weak = quality_bar("dlm", ok, 5.05)  # 1.15 nats below unigram: today's 0.87 would fail too
    assert not weak["ce_t0.5_nats_below_unigram"]["passed"] and not weak["passed"]
    assert quality_bar("ar", {"next_token_ce": 3.6}, 5.2)["passed"]
    assert not quality_bar("ar", {"next_token_ce": 3.8}, 5.2)["passed"]


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


class PlantedObject:
    """Unpickling it would create `marker` (stands for arbitrary code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_resume_file_holding_a_python_object_is_refused_without_running_it(corpus, tmp_path):
    out, marker = tmp_path / "m", tmp_path / "code-ran"
    torch.save({"signature": "x", "step": 3, "payload": PlantedObject(marker)}, resume_file(out))
    with pytest.raises(ValueError, match=r"\.m\.resume\.safetensors: not a sinkprune resume"):
        train_model(corpus["train"], corpus["valid"], corpus["tokenizer"], out, "dlm", ARCH,
                    {**TRAIN, "max_steps": 2}, seed=0)  # fmt: skip
    assert not marker.exists()
    assert not (out / "train_metrics.json").exists()


def test_a_resume_file_with_extra_tensors_is_refused(corpus, tmp_path):
    out = tmp_path / "m"
    save_file({"evil/x": torch.zeros(1), "generator": torch.Generator().get_state()},
              str(resume_file(out)), metadata={"format": training.RESUME_FORMAT, "signature": "x",
                                               "progress": "{}"})  # fmt: skip
    with pytest.raises(ValueError, match="unexpected tensor 'evil/x'"):
        train_model(corpus["train"], corpus["valid"], corpus["tokenizer"], out, "dlm", ARCH,
                    {**TRAIN, "max_steps": 2}, seed=0)  # fmt: skip


def test_a_resume_file_from_other_settings_is_ignored(corpus, tmp_path, monkeypatch):
    args = (corpus["train"], corpus["valid"], corpus["tokenizer"])
    short = {**TRAIN, "max_steps": 6, "eval_every": 3}
    fresh = train_model(*args, tmp_path / "fresh", "dlm", ARCH, short, seed=0)

    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)
    real_windows, calls = training.random_windows, {"n": 0}

    def dies_at_step_4(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("killed")
        return real_windows(*a, **k)

    monkeypatch.setattr(training, "random_windows", dies_at_step_4)
    out = tmp_path / "m"
    with pytest.raises(KeyboardInterrupt):  # checkpoint of a run with another lr
        train_model(*args, out, "dlm", ARCH, {**short, "lr": 0.02}, seed=0)
    assert resume_file(out).is_file()
    monkeypatch.setattr(training, "random_windows", real_windows)
    again = train_model(*args, out, "dlm", ARCH, short, seed=0)
    assert again["heldout"] == fresh["heldout"]
    a, b = load_file(tmp_path / "fresh" / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


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


def test_dream_loss_is_unbiased_for_the_token_average_ce():
    B, T, V = 32, 64, 50
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, V - 1, (B, T), generator=gen)
    losses = [dream_loss(UniformLogits(V), x, V - 1, gen).item() for _ in range(100)]
    assert sum(losses) / len(losses) == pytest.approx(math.log(V), rel=0.03)


def test_dream_loss_masked_mean_is_the_mean_over_windows_of_shifted_masked_ce():
    B, T, V, mask_id, eps = 5, 6, 11, 10, 1e-3
    x = torch.randint(0, 10, (B, T), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(5)
    replay = torch.Generator().set_state(gen.get_state())
    model = Stub(T, V)
    loss = dream_loss(model, x, mask_id, gen, eps, weighting="masked_mean")

    u = torch.rand(1, generator=replay).item()
    draws = torch.rand(B, T, generator=replay)
    per_window = []
    for b in range(B):
        p = (1 - eps) * ((u + b / B) % 1.0) + eps
        ces = [
            -model.table[j - 1].log_softmax(-1)[x[b, j]].item()
            for j in range(1, T)
            if draws[b, j].item() < p
        ]
        if ces:
            per_window.append(sum(ces) / len(ces))
    assert 0 < len(per_window)
    assert loss.item() == pytest.approx(sum(per_window) / len(per_window), rel=1e-5)
