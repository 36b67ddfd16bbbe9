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


def test_per_window_values_for_paired_comparisons(text_file):
    """Per-window CE sums and counts add up to the reported CE, the windows are named by their
    chunk index, and the ELBO nats per window average to the reported bits per token."""
    model = Linear()
    out = heldout_eval(model, CharTok(), text_file, 4, 32, [0.3, 0.7], mc_num=4, batch_size=3)
    enc = lambda s: CharTok()(s)["input_ids"]  # noqa: E731
    w = heldout_windows(text_file.read_text(), enc, 4, 32, 0)
    ids = torch.tensor(enc(text_file.read_text()))
    assert [ids[j * 32 : (j + 1) * 32].tolist() for j in out["windows"]] == w.tolist()
    for row in out["masked"]:
        sums, counts = row["ce_sum_per_window"], row["n_masked_per_window"]
        assert len(sums) == len(counts) == 4 and sum(counts) == row["n_masked"]
        assert sum(sums) / sum(counts) == pytest.approx(row["ce_nats"], rel=1e-6)
        # stderr of the ratio estimator, by hand (delta method)
        r = sum(sums) / sum(counts)
        resid = [s - r * c for s, c in zip(sums, counts, strict=True)]
        expected = math.sqrt(sum(x * x for x in resid) / (4 * 3)) / (sum(counts) / 4)
        assert row["ce_nats_stderr"] == pytest.approx(expected, rel=1e-6)
    nats = out["elbo"]["nats_per_window"]
    assert sum(nats) / 4 / 32 / math.log(2) == pytest.approx(out["bits_per_token"], rel=1e-6)
    # same windows, same masks: another variant is paired window by window (the masked-CE masks
    # do not depend on the batch size; the ELBO draws depend on the window and the settings)
    other = Linear()
    other.emb = other.emb * 0.5
    again = heldout_eval(other, CharTok(), text_file, 4, 32, [0.3, 0.7], mc_num=4, batch_size=2)
    assert again["windows"] == out["windows"]
    assert again["masked"][0]["n_masked_per_window"] == out["masked"][0]["n_masked_per_window"]
    assert again["masked"][0]["ce_sum_per_window"] != out["masked"][0]["ce_sum_per_window"]


def test_causal_per_window_sums(text_file):
    out = heldout_eval(Linear(causal=True), CharTok(), text_file, 4, 32, [0.5], batch_size=3)
    sums = out["next_token"]["ce_sum_per_window"]
    assert sum(sums) / (4 * 31) == pytest.approx(out["next_token"]["ce_nats"], rel=1e-6)
    assert out["next_token"]["ce_nats_stderr"] > 0
