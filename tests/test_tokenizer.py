"""Byte-level BPE tokenizer (sinkprune.tokenizer): round trip, mask token, offline reload."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys

import pytest

from sinkprune import tokenizer as T

VOCAB = 300
SAMPLES = [
    "To be, or not to be: that is the question:",
    "Ber.\nWho's there?\n\nFran.\n  Nay, answer me:\tstand, and unfold yourself.",
    "  leading and trailing spaces  ",
    "Unicode: Étoile, naïve, 雪, ☃ — and an emoji 🙂.",
    "",
    "<|bos|>special tokens in text<|eos|>",
]


@pytest.fixture(scope="module")
def train_txt(tmp_path_factory):
    from sinkprune.corpus import shakespeare_documents

    docs = shakespeare_documents("modern")[:3]
    path = tmp_path_factory.mktemp("corpus") / "train.txt"
    path.write_text("\n\n".join(d.text for d in docs) + "\n")
    return path


@pytest.fixture(scope="module")
def saved(train_txt, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    T.make_tokenizer(train_txt, out, VOCAB)
    return out


@pytest.fixture(scope="module")
def tok(saved):
    return T.load_tokenizer(saved)


def test_writes_exactly_the_rule_outputs(saved):
    assert sorted(p.name for p in saved.iterdir()) == sorted(T.FILES)
    cfg = json.loads((saved / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert cfg["mask_token"] == "<|mdm_mask|>"


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert all(0 <= i < VOCAB for i in ids)


def test_every_byte_is_encodable(tok):
    text = bytes(range(32, 127)).decode() + "\x00\x07\x7f"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_vocab_and_special_ids(tok):
    assert len(tok) == VOCAB
    assert [tok.convert_tokens_to_ids(t) for t in T.SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2)


def test_mask_token_is_one_known_id(tok):
    assert T.mask_token_id(tok) == tok.mask_token_id == 3
    ids = tok.encode("thou<|mdm_mask|>art", add_special_tokens=False)
    assert ids.count(3) == 1
    assert tok.decode(ids, skip_special_tokens=True) == "thouart"


def test_no_special_tokens_added_implicitly(tok):
    ids = tok("hello")["input_ids"]
    assert not set(ids) & {0, 1, 2, 3}


def test_first_merge_is_the_most_frequent_pair(saved, train_txt):
    """Independent check of BPE training: count adjacent byte-level symbol pairs by hand."""
    from tokenizers import pre_tokenizers

    pre = pre_tokenizers.ByteLevel(add_prefix_space=False)
    counts = collections.Counter()
    for word, _ in pre.pre_tokenize_str(train_txt.read_text()):
        counts.update(zip(word, word[1:], strict=False))
    merges = json.loads((saved / "tokenizer.json").read_text())["model"]["merges"]
    first = tuple(merges[0].split(" ")) if isinstance(merges[0], str) else tuple(merges[0])
    assert counts[first] == max(counts.values())
    assert len(merges) == VOCAB - 256 - len(T.SPECIAL_TOKENS)


def test_deterministic(train_txt, saved, tmp_path):
    T.make_tokenizer(train_txt, tmp_path, VOCAB)
    for name in T.FILES:
        assert (tmp_path / name).read_bytes() == (saved / name).read_bytes()


def test_reload_offline_with_auto_tokenizer(saved):
    """A fresh process with the hub switched off and an unreachable endpoint."""
    code = (
        "import sys\n"
        "from transformers import AutoTokenizer\n"
        "t = AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "print(t.mask_token_id, t.encode('To be', add_special_tokens=False))\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_ENDPOINT": "http://127.0.0.1:9",
    }
    proc = subprocess.run(
        [sys.executable, "-c", code, str(saved)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    here = T.load_tokenizer(saved / "tokenizer.json")  # the file path works too
    expected = f"3 {here.encode('To be', add_special_tokens=False)}"
    assert proc.stdout.strip() == expected


def test_vocab_size_too_small(train_txt, tmp_path):
    with pytest.raises(ValueError, match="tokenizer.vocab_size"):
        T.make_tokenizer(train_txt, tmp_path, 259)


def test_load_tokenizer_missing_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        T.load_tokenizer(tmp_path)
