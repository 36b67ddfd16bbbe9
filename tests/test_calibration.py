"""Calibration windows and the noising process (method.md §2)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from sinkprune.calibration import (
    NoiseSpec,
    build_calibration,
    load_samples,
    mask_probability,
    noise,
    noised_batch,
    sample_windows,
)

MASK = 999


def test_mask_probability_formula():
    assert mask_probability(0.0, 1e-3) == pytest.approx(1e-3)
    assert mask_probability(1.0, 1e-3) == pytest.approx(1.0)
    assert mask_probability(0.3, 0.01) == pytest.approx(0.99 * 0.3 + 0.01)


@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_masked_fraction_matches_p(t):
    n = 200_000
    ids = torch.arange(n) % 50
    g = torch.Generator().manual_seed(1)
    x, masked = noise(ids, t, 1e-3, MASK, g)
    p = (1 - 1e-3) * t + 1e-3
    frac = masked.float().mean().item()
    # 5 binomial standard deviations
    assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert torch.equal(x[masked], torch.full((int(masked.sum()),), MASK))
    assert torch.equal(x[~masked], ids[~masked])


def test_all_masked_at_t1_and_keep_ends():
    ids = torch.randint(0, 50, (4, 33))
    x, masked = noise(ids, 1.0, 1e-3, MASK, torch.Generator().manual_seed(0))
    assert masked.all() and (x == MASK).all()
    x, masked = noise(ids, 1.0, 1e-3, MASK, torch.Generator().manual_seed(0), keep_ends=True)
    assert not masked[:, 0].any() and not masked[:, -1].any()
    assert masked[:, 1:-1].all()
    assert torch.equal(x[:, 0], ids[:, 0]) and torch.equal(x[:, -1], ids[:, -1])


def test_noised_batch_reproducible_and_batch_independent():
    spec = NoiseSpec(eps=1e-3, mask_id=MASK, seed=7)
    tokens = torch.randint(0, 50, (3, 64))
    a, ma = noised_batch([0, 1, 2], tokens, 5, 0.5, spec)
    b, mb = noised_batch([0, 1, 2], tokens, 5, 0.5, spec)
    assert torch.equal(a, b) and torch.equal(ma, mb)
    # one row on its own gives the same x_t as inside the batch
    c, _ = noised_batch([1], tokens[1:2], 5, 0.5, spec)
    assert torch.equal(c[0], a[1])
    # different step, sample or seed → different masks
    d, _ = noised_batch([0, 1, 2], tokens, 10, 0.5, spec)
    assert not torch.equal(ma, d == MASK)
    assert not torch.equal(ma[0], ma[1])
    e, _ = noised_batch([0, 1, 2], tokens, 5, 0.5, NoiseSpec(1e-3, MASK, seed=8))
    assert not torch.equal(a, e)


def test_sample_windows_match_independent_draw():
    ids = np.arange(1000, dtype=np.int64)
    w = sample_windows(ids, nsamples=5, seqlen=16, seed=3)
    rng = random.Random(3)
    starts = [rng.randint(0, 1000 - 16 - 1) for _ in range(5)]
    expect = np.stack([np.arange(s, s + 16) for s in starts])
    assert w.dtype == np.int32 and np.array_equal(w, expect)
    with pytest.raises(ValueError, match="calibration.seqlen"):
        sample_windows(ids[:10], 1, 16, 0)


def _tiny_tokenizer(path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = "the king queen is dead long live our lord and lady".split()
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(path)
    return vocab


def test_build_calibration_roundtrip(tmp_path):
    vocab = _tiny_tokenizer(tmp_path / "model")
    text = "the king is dead\nlong live the king\n\n\nour lord\n\nand lady queen\n"
    (tmp_path / "train.txt").write_text(text * 20)
    out = tmp_path / "samples.parquet"
    build_calibration(tmp_path / "train.txt", tmp_path / "model", out, 4, 8, seed=0)
    ids, tokens = load_samples(out)
    assert ids.tolist() == [0, 1, 2, 3]
    assert tokens.shape == (4, 8) and tokens.dtype == torch.int64
    # independent tokenisation: the whitespace words of the whole file, in order
    stream = np.array([vocab[w] for w in (text * 20).split()])
    rng = random.Random(0)
    for row in tokens.numpy():
        s = rng.randint(0, len(stream) - 8 - 1)
        assert np.array_equal(row, stream[s : s + 8])


def _bpe_with_bos(path):
    """A GPT-2-style byte-level BPE that merges a newline with the spaces after it, and a
    post-processor that prepends <bos> (as LLaDA's tokenizer does)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<bos>"], show_progress=False)
    tok.train_from_iterator(["the king\n  is dead\n  long live\n  the king\n"] * 50, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.token_to_id("<bos>"))]
    )
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>").save_pretrained(path)
    return tok


def test_calibration_stream_is_the_release_single_call(tmp_path):
    """The train split is tokenised as `tokenizer(" ".join(records))`: one call (line chunks
    would split a newline from the spaces after it), default special tokens (BOS first), and
    not the newline the corpus rule writes after the joined records."""
    from sinkprune.calibration import tokenize_corpus
    from sinkprune.training import encode_file

    tok = _bpe_with_bos(tmp_path / "model")
    records = [f"line {i} the king\n  is dead" for i in range(300)]
    joined = " ".join(records)
    (tmp_path / "train.txt").write_text(joined + "\n")  # what corpus.split_text writes
    ids = tokenize_corpus(tmp_path / "train.txt", tmp_path / "model")
    release = tok.encode(joined).ids  # the release: tokenizer(" ".join(records))
    assert ids.tolist() == release and release[0] == tok.token_to_id("<bos>")
    from transformers import AutoTokenizer

    (tmp_path / "raw.txt").write_text(joined)
    chunked = encode_file(tmp_path / "raw.txt", AutoTokenizer.from_pretrained(tmp_path / "model"),
                          lines_per_chunk=2)  # fmt: skip
    # the former line-chunked stream: "\n" and the spaces after it no longer merge
    assert len(chunked) > len(release) - 1
