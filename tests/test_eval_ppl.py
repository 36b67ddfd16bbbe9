"""The release's perplexity protocol (sinkprune.evaluation.ppl) against a direct re-implementation
of the release's formulas (written here, from `eval_ppl_llada` / `eval_ppl_dream`), with the
release's global-RNG draws: same seed, same masks, same number."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_llada

from sinkprune.evaluation.ppl import (
    PPLSettings,
    chunk_starts,
    llada_draws,
    ppl_eval,
    protocol_text,
    release_ppl,
)
from sinkprune.models import DreamConfig, DreamModel, LLaDAConfig, LLaDAModelLM, get_adapter

VOCAB = 40


def tiny_dream() -> DreamModel:
    torch.manual_seed(1)
    cfg = DreamConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB,
                      max_position_embeddings=32, rope_theta=10000.0,
                      mask_token_id=VOCAB - 1)  # fmt: skip
    return DreamModel(cfg).eval()


def stream(n: int, seed: int = 3) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB - 1, (n,), generator=g).tolist()  # never the mask id


# ------------------------------------------------- the release, re-implemented ---
def release_llada_ppl(model, ids, prompt_len, chunk, stride, mc_num, mask_id, seed):
    """eval_ppl_llada + get_ppl + forward_process (batch of one) with torch's global RNG."""
    torch.manual_seed(seed)
    ppls = []
    for i in range(chunk, len(ids) - chunk, stride):
        prompt = torch.tensor(ids[max(0, i - prompt_len) : i])
        answer = torch.tensor(ids[i : i + chunk])
        seq = torch.cat([prompt, answer])[None]
        losses = []
        for _ in range(mc_num):
            n = answer.numel()
            k = torch.randint(1, n + 1, ())
            count = torch.round(torch.linspace(float(k), float(k), steps=1)).long()
            count = ((count - 1) % n) + 1
            order = torch.arange(n)[None] < count[:, None]
            order[0] = order[0][torch.randperm(n)]
            full = torch.cat([torch.zeros(1, prompt.numel(), dtype=torch.bool), order], 1)
            noisy = torch.where(full, mask_id, seq)
            where = noisy == mask_id
            with torch.no_grad():
                logits = model(noisy).logits
            losses.append(F.cross_entropy(logits[where], seq[where]).item())
        ppls.append(np.exp(sum(losses) / len(losses)))
    return float(np.exp(np.mean(np.log(ppls)))), ppls


def release_dream_ppl(model, ids, prompt_len, chunk, stride, mc_num, mask_id, eps, seed):
    """eval_ppl_dream + get_nll_mc(log_type='ftb', cfg 1.0) + Dream's forward_process."""
    torch.manual_seed(seed)
    total_nll, total_tokens, per_chunk = 0.0, 0, []
    for i in range(chunk, len(ids) - chunk, stride):
        prompt = torch.tensor(ids[max(0, i - prompt_len) : i])
        answer = torch.tensor(ids[i : i + chunk])
        seq = torch.cat([prompt, answer])[None]
        losses = []
        for _ in range(mc_num):
            b, length = seq.shape
            u0 = torch.rand(1)
            t = (u0 + torch.arange(b).float() / b) % 1
            p_mask = ((1 - eps) * t + eps)[:, None].repeat(1, length)
            chosen = torch.rand((b, length)) < p_mask
            chosen[:, 0] = False
            chosen[:, -1] = False
            noisy_all = torch.where(chosen, mask_id, seq)
            noisy = seq.clone()
            noisy[:, -answer.numel() :] = noisy_all[:, -answer.numel() :]
            where = noisy == mask_id
            if not where.any():
                continue
            with torch.no_grad():
                raw = model(noisy).logits
            logits = torch.cat([raw[:, :1], raw[:, :-1]], dim=1)
            ce = F.cross_entropy(logits[where], seq[where], reduction="none") / p_mask[where]
            losses.append(ce.sum().item())
        if not losses:
            continue
        nll = sum(losses) / len(losses)
        per_chunk.append(nll / answer.numel())
        total_nll += nll
        total_tokens += answer.numel()
    return float(np.exp(total_nll / total_tokens)), per_chunk


# ------------------------------------------------------------------- tests ---
def test_llada_protocol_equals_the_release_formula():
    model = tiny_llada()
    ids = stream(70)
    s = PPLSettings(rows=None, prompt_length=10, chunk_size=6, stride=5, mc_num=7, batch_size=3)
    ours = release_ppl(get_adapter(model), ids, s, seed=11)
    want, chunk_ppls = release_llada_ppl(model, ids, 10, 6, 5, 7, VOCAB - 1, seed=11)
    assert ours["n_chunks"] == len(chunk_ppls) == len(range(6, 64, 5))
    got = [math.exp(c["log_ppl"]) for c in ours["chunks"]]
    assert got == pytest.approx(chunk_ppls, rel=1e-5)
    assert ours["ppl"] == pytest.approx(want, rel=1e-5)
    assert [c["prompt_tokens"] for c in ours["chunks"]][:2] == [6, 10]  # short first prompt


def test_dream_protocol_equals_the_release_formula_including_dropped_draws():
    model = tiny_dream()
    ids = stream(60, seed=5)
    s = PPLSettings(rows=None, prompt_length=8, chunk_size=3, stride=4, mc_num=9, batch_size=4,
                    eps=1e-3)  # fmt: skip
    ours = release_ppl(get_adapter(model), ids, s, seed=2)
    want, per_chunk = release_dream_ppl(model, ids, 8, 3, 4, 9, VOCAB - 1, 1e-3, seed=2)
    assert [c["log_ppl"] for c in ours["chunks"]] == pytest.approx(per_chunk, rel=1e-5)
    assert ours["ppl"] == pytest.approx(want, rel=1e-5)
    # with 2 maskable answer positions some draws mask nothing and are dropped, as in the release
    assert any(c["draws"] < 9 for c in ours["chunks"])


def test_batching_does_not_change_the_draws_or_the_result():
    adapter = get_adapter(tiny_llada())
    ids = stream(50)
    a = release_ppl(adapter, ids, PPLSettings(None, 8, 4, 4, mc_num=6, batch_size=1), seed=0)
    b = release_ppl(adapter, ids, PPLSettings(None, 8, 4, 4, mc_num=6, batch_size=6), seed=0)
    assert a["log_ppl"] == pytest.approx(b["log_ppl"], rel=1e-6)
    c = release_ppl(adapter, ids, PPLSettings(None, 8, 4, 4, mc_num=6, batch_size=6), seed=1)
    assert c["log_ppl"] != pytest.approx(a["log_ppl"], rel=1e-6)


def test_llada_draws_are_uniform_counts_and_subsets():
    gen = torch.Generator().manual_seed(0)
    draws = llada_draws(5, 4000, gen)
    counts = torch.bincount(draws.sum(1), minlength=6)
    assert counts[0] == 0 and (counts[1:] > 700).all()  # k ~ U{1..5}: 800 expected each
    assert (draws.float().mean(0) - 0.6).abs().max() < 0.03  # E[k]/ℓ = 3/5 at every position


def test_aggregate_is_geometric_mean_with_stderr_over_chunks():
    ids = stream(40)
    out = release_ppl(get_adapter(tiny_llada()), ids, PPLSettings(None, 6, 4, 4, 3, 3), seed=0)
    values = np.array([c["log_ppl"] for c in out["chunks"]])
    assert out["ppl"] == pytest.approx(float(np.exp(values.mean())))
    assert out["log_ppl_stderr"] == pytest.approx(values.std(ddof=1) / math.sqrt(len(values)))
    lo, hi = out["ppl_ci95"]
    assert lo < out["ppl"] < hi


def test_causal_model_scores_the_exact_next_token_loss():
    torch.manual_seed(0)
    cfg = LLaDAConfig(d_model=32, n_layers=2, n_heads=4, mlp_hidden_size=64, vocab_size=VOCAB,
                      max_sequence_length=16, mask_token_id=VOCAB - 1, causal=True)  # fmt: skip
    model = LLaDAModelLM(cfg).eval()
    ids = stream(30)
    out = release_ppl(get_adapter(model), ids, PPLSettings(None, 5, 3, 3, 2, 2), seed=0)
    first = out["chunks"][0]
    seq = torch.tensor(ids[0:6])
    with torch.no_grad():
        logp = torch.log_softmax(model(seq[None]).logits[0], -1)
    want = -float(sum(logp[j - 1, seq[j]] for j in range(3, 6))) / 3
    assert first["log_ppl"] == pytest.approx(want, rel=1e-5)


def test_chunk_starts_and_text_follow_the_release():
    assert list(chunk_starts(256, 64, 64)) == [64, 128]  # a chunk ending at n is not scored
    assert list(chunk_starts(257, 64, 64)) == [64, 128, 192]
    assert protocol_text([" a \n", "", "  ", " b \n", "c"], rows=4) == " a \n\n b \n"
    assert protocol_text(["x", "", "y"], rows=None) == "x\ny"


def test_settings_and_lengths_are_checked():
    with pytest.raises(ValueError, match="evaluation.ppl.chunk_size"):
        PPLSettings(chunk_size=0)
    with pytest.raises(ValueError, match="evaluation.ppl.rows"):
        PPLSettings(rows=0)
    adapter = get_adapter(tiny_llada())  # max length 16
    with pytest.raises(ValueError, match="exceeds the model's max length 16"):
        release_ppl(adapter, stream(40), PPLSettings(None, 12, 6, 6, 1, 1))
    with pytest.raises(ValueError, match="too few for one chunk"):
        release_ppl(adapter, stream(8), PPLSettings(None, 4, 4, 4, 1, 1))


def test_ppl_eval_tokenises_the_file_in_one_call_with_default_special_tokens(tmp_path):
    class Tok:
        calls = []

        def __call__(self, text, **kw):
            self.calls.append((text, kw))
            return {"input_ids": [1] + [ord(ch) % (VOCAB - 2) for ch in text]}  # adds a BOS

    path = tmp_path / "ppl_text.txt"
    path.write_bytes(b"line one\r\nline two\n")
    tok = Tok()
    out = ppl_eval(get_adapter(tiny_llada()), tok, path, PPLSettings(None, 8, 4, 4, 2, 2))
    assert tok.calls == [("line one\r\nline two\n", {})]  # bytes as written, default tokens
    assert out["n_tokens"] == 20 and out["text"] == str(path)


def test_ppl_text_takes_the_first_rows_of_the_dataset_test_split(monkeypatch, tmp_path):
    """hf_dataset: the rows of the dataset's test split (as the release streams them), never the
    space-joined test.txt; other kinds: the lines of test.txt. The hub is never contacted."""
    import datasets

    from sinkprune.evaluation.ppl import write_ppl_text

    rows = ["", " = Title = \n", "", " Body one .\n", " \n", " Body two .\n"]
    fake = datasets.DatasetDict(
        {s: datasets.Dataset.from_dict({"text": rows}) for s in ("train", "validation", "test")}
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: fake)
    cfg = {"kind": "hf_dataset", "dataset": {"path": "wikitext", "name": "x", "join": " "}}
    out = tmp_path / "ppl_text.txt"
    write_ppl_text(cfg, 0, tmp_path / "unused.txt", 4, out)
    assert out.read_bytes() == b" = Title = \n\n Body one .\n"
    write_ppl_text(cfg, 0, tmp_path / "unused.txt", None, out)
    assert out.read_bytes() == b" = Title = \n\n Body one .\n\n Body two .\n"
    test_txt = tmp_path / "test.txt"
    test_txt.write_text("ACT I\n\n  Scene one.\nline\n")
    write_ppl_text({"kind": "shakespeare"}, 0, test_txt, 3, out)
    assert out.read_text() == "ACT I\n  Scene one."
    (tmp_path / "blank.txt").write_text("\n  \nword\n")
    with pytest.raises(ValueError, match="evaluation.ppl.rows"):
        write_ppl_text({"kind": "text_file"}, 0, tmp_path / "blank.txt", 2, out)
