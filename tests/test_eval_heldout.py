"""heldout.json: masked-token CE per t, ELBO bits per token, next-token CE for AR models."""

import math

import pytest
import torch
import torch.nn.functional as F

from sinkprune.evaluation.heldout import heldout_eval, heldout_windows, masked_ce

torch.set_num_threads(1)
V, MASK = 13, 12


class CharTok:
    """ids = character codes mod 12 (12 is the mask id)."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) % 12 for c in text]}


class Uniform:
    mask_token_id, causal, max_length = MASK, False, 64

    def mdm_logits(self, ids):
        return torch.zeros(*ids.shape, V)


class Linear:
    """Deterministic non-uniform logits depending on the whole input (bidirectional)."""

    mask_token_id, max_length = MASK, 64

    def __init__(self, causal=False):
        torch.manual_seed(0)
        self.causal = causal
        self.emb = torch.randn(V, V)

    def mdm_logits(self, ids):
        h = self.emb[ids]
        return h + h.mean(1, keepdim=True)

    logits = mdm_logits


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "test.txt"
    p.write_text("".join(chr(97 + (i * 7) % 26) for i in range(400)))
    return p


def test_windows_are_distinct_chunks_in_order():
    ids = list(range(100))
    w = heldout_windows("x" * 100, lambda s: ids, 5, 16, seed=0)
    assert w.shape == (5, 16)
    starts = w[:, 0].tolist()
    assert starts == sorted(starts) and all(s % 16 == 0 for s in starts)
    assert all(w[i].tolist() == list(range(s, s + 16)) for i, s in enumerate(starts))
    with pytest.raises(ValueError, match="n_sequences"):
        heldout_windows("x" * 100, lambda s: ids, 7, 16, seed=0)


def test_uniform_model_gives_log2_vocab_bits(text_file):
    out = heldout_eval(Uniform(), CharTok(), text_file, 4, 32, [0.15, 0.85], mc_num=4, batch_size=2)
    for row in out["masked"]:
        assert row["ce_nats"] == pytest.approx(math.log(V), rel=1e-6)
    assert out["bits_per_token"] == pytest.approx(math.log2(V), rel=1e-6)
    assert out["elbo"]["bits_per_token"] == pytest.approx(math.log2(V), rel=1e-6)


def test_fully_masked_ce_matches_direct_computation():
    model = Linear()
    x = torch.randint(0, 12, (3, 10))
    got = masked_ce(model.mdm_logits, x, 0.9999, MASK, seed=1, batch_size=2, device="cpu")
    logits = model.mdm_logits(torch.full_like(x, MASK))
    expected = F.cross_entropy(logits.reshape(-1, V), x.reshape(-1))
    assert got["n_masked"] == 30
    assert got["ce_nats"] == pytest.approx(float(expected), rel=1e-5)


def test_masks_fixed_by_seed_and_rate_follows_t():
    x = torch.randint(0, 12, (64, 32))
    m = Linear()
    a = masked_ce(m.mdm_logits, x, 0.5, MASK, seed=3, batch_size=16, device="cpu")
    b = masked_ce(m.mdm_logits, x, 0.5, MASK, seed=3, batch_size=64, device="cpu")
    assert a["n_masked"] == b["n_masked"] and a["ce_nats"] == pytest.approx(b["ce_nats"])
    assert 0.45 < a["n_masked"] / x.numel() < 0.55


def test_causal_model_reports_next_token_ce(text_file):
    model = Linear(causal=True)
    out = heldout_eval(model, CharTok(), text_file, 4, 32, [0.5], batch_size=3)
    w = heldout_windows(text_file.read_text(), lambda s: CharTok()(s)["input_ids"], 4, 32, 0)
    logits = model.logits(w)[:, :-1]
    ce = F.cross_entropy(logits.reshape(-1, V), w[:, 1:].reshape(-1))
    assert out["causal"] and out["elbo"] is None
    assert out["next_token"]["ce_nats"] == pytest.approx(float(ce), rel=1e-5)
    assert out["bits_per_token"] == pytest.approx(float(ce) / math.log(2), rel=1e-5)


def test_seqlen_longer_than_model_is_an_error(text_file):
    with pytest.raises(ValueError, match="evaluation.heldout.seqlen"):
        heldout_eval(Uniform(), CharTok(), text_file, 2, 128, [0.5])
