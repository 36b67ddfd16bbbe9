"""Low-confidence remasking generation and the lm-eval model class on rigged models."""

import pytest
import torch
from lm_eval.api.instance import Instance

from sinkprune.evaluation.generate import (
    check_gen_settings,
    cut_at_stops,
    diffusion_generate,
    transfer_schedule,
)
from sinkprune.evaluation.lm import SinkpruneDLM

torch.set_num_threads(1)
TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"


class Rigged:
    """Logits that put `target[j]` on top at position j with confidence conf[j]; records inputs."""

    def __init__(self, target, vocab, conf=None, mask_id=3, causal=False):
        self.target = torch.tensor(target)
        self.vocab, self.mask_token_id, self.causal = vocab, mask_id, causal
        self.conf = torch.ones(len(target)) if conf is None else torch.tensor(conf)
        self.inputs = []
        self.max_length = 64

    def mdm_logits(self, ids):
        self.inputs.append(ids.clone())
        B, T = ids.shape
        logits = torch.zeros(B, T, self.vocab)
        logits[:, torch.arange(T), self.target[:T]] = 2.0 + 3.0 * self.conf[:T]
        return logits

    logits = mdm_logits


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from sinkprune.tokenizer import train_bpe, wrap

    f = tmp_path_factory.mktemp("tok") / "train.txt"
    f.write_text(TEXT * 20)
    return wrap(train_bpe([f], 300))


def test_schedule_and_settings():
    assert transfer_schedule(7, 3) == [3, 2, 2]
    assert transfer_schedule(2, 4) == [1, 1, 0, 0]
    assert check_gen_settings(8, 4, 4) == 2
    with pytest.raises(ValueError, match="block_length"):
        check_gen_settings(10, 4, 4)
    with pytest.raises(ValueError, match="steps"):
        check_gen_settings(8, 3, 4)
    assert cut_at_stops("abc\ndef.", ["\n", "."]) == "abc"
    assert cut_at_stops("abc", ["\n"]) == "abc"
    # the release's loop cuts at each stop in turn: "bc" first leaves "a", "ab" is then absent
    # (cutting at the earliest occurrence of any stop would give "")
    assert cut_at_stops("abc", ["bc", "ab"]) == "a" and cut_at_stops("abc", ["ab", "bc"]) == ""


def test_commits_most_confident_first():
    prompt = [5, 6]
    target = prompt + [7, 8, 9, 10]
    conf = [1, 1, 0.1, 0.9, 0.5, 0.7]
    m = Rigged(target, 12, conf)
    out = diffusion_generate(m.mdm_logits, prompt, 3, gen_length=4, steps=4, block_length=4)
    assert out == [7, 8, 9, 10]
    # the input before step s has the s most confident positions filled: 3, then 5, then 4
    filled = [(x[0, 2:] != 3).nonzero()[:, 0].add(2).tolist() for x in m.inputs]
    assert filled == [[], [3], [3, 5], [3, 4, 5]]


def test_blocks_commit_in_order():
    prompt = [5]
    target = prompt + [6, 7, 8, 9]
    conf = [1, 0.1, 0.2, 0.9, 0.95]  # the second block is more confident but must wait
    m = Rigged(target, 12, conf)
    out = diffusion_generate(m.mdm_logits, prompt, 3, gen_length=4, steps=4, block_length=2)
    assert out == [6, 7, 8, 9]
    steps = [x[0, 1:].tolist() for x in m.inputs]  # inputs before each of the 4 steps
    assert steps == [[3, 3, 3, 3], [3, 7, 3, 3], [6, 7, 3, 3], [6, 7, 3, 9]]


def make_lm(tokenizer, prompt, answer, **kw):
    ids = tokenizer(prompt + answer, add_special_tokens=False)["input_ids"]
    target = ids + [tokenizer.eos_token_id] * 16
    m = Rigged(target, len(tokenizer), mask_id=tokenizer.mask_token_id, **kw)
    return SinkpruneDLM(adapter=m, tokenizer=tokenizer, gen_length=8, steps=8, block_length=4)


def test_generate_until_produces_rigged_text_and_stops(tokenizer):
    prompt, answer = "To be, or not", " to be, that is\nthe question"
    lm = make_lm(tokenizer, prompt, answer)
    assert lm.rank == 0 and lm.world_size == 1
    reqs = [Instance("generate_until", {}, (prompt, {"until": ["\n"]}), 0)]
    (out,) = lm.generate_until(reqs, disable_tqdm=True)
    full = tokenizer.decode(tokenizer(answer, add_special_tokens=False)["input_ids"][:8])
    assert out == full.split("\n")[0] == " to be, that is"


def test_generate_until_drops_eos_tokens(tokenizer):
    prompt, answer = "To be, or not", " to"
    lm = make_lm(tokenizer, prompt, answer)
    reqs = [Instance("generate_until", {}, (prompt, {"until": []}), 0)]
    assert lm.generate_until(reqs, disable_tqdm=True) == [" to"]


def test_text_after_an_eos_is_kept_as_the_release_does(tokenizer):
    """The release decodes every generated token and splits only at the task's stop strings,
    then drops special tokens: text a model writes after an EOS (or a mask id) stays in the
    answer (GSM8K's flexible-extract takes the last number of it)."""
    prompt = "To be, or not"
    enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    eos, mask = tokenizer.eos_token_id, tokenizer.mask_token_id
    gen = enc(" to") + [eos] + enc(" be, that") + [mask, eos]  # 8 tokens after the prompt
    gen = (gen + [eos] * 8)[:8]
    m = Rigged(enc(prompt) + gen + [eos] * 8, len(tokenizer), mask_id=mask)
    lm = SinkpruneDLM(adapter=m, tokenizer=tokenizer, gen_length=8, steps=8, block_length=4)
    # the release, step by step, on the same generated ids
    text = tokenizer.decode(gen, skip_special_tokens=False)
    for stop in [","]:
        if stop in text:
            text = text.split(stop)[0]
    want = tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True)
    reqs = [Instance("generate_until", {}, (prompt, {"until": [","]}), 0)]
    assert lm.generate_until(reqs, disable_tqdm=True) == [want] == [" to be"]
    reqs = [Instance("generate_until", {}, (prompt, {"until": []}), 0)]
    assert lm.generate_until(reqs, disable_tqdm=True) == [" to be, that"]


def test_causal_generation_is_greedy(tokenizer):
    prompt, answer = "To be, or not", " to be, that is\nthe"
    ids = tokenizer(prompt + answer, add_special_tokens=False)["input_ids"]
    # causal: logits at i predict token i+1, so shift the rigged target left by one
    m = Rigged(ids[1:] + [0] * 20, len(tokenizer), mask_id=tokenizer.mask_token_id, causal=True)
    lm = SinkpruneDLM(adapter=m, tokenizer=tokenizer, gen_length=8, steps=8, block_length=8)
    reqs = [Instance("generate_until", {}, (prompt, {"until": ["\n"]}), 0)]
    assert lm.generate_until(reqs, disable_tqdm=True) == [" to be, that is"]


def test_loglikelihood_order_independent_and_rolling_raises(tokenizer):
    lm = make_lm(tokenizer, "To be", " or not", conf=None)
    lm.set_settings(mc_num=4, batch_size=2)
    reqs = [
        Instance("loglikelihood", {}, ("To be,", " or not"), 0),
        Instance("loglikelihood", {}, ("Whether 'tis", " nobler"), 1),
        Instance("loglikelihood", {}, ("", "the question"), 2),
    ]
    a = lm.loglikelihood(reqs, disable_tqdm=True)
    b = lm.loglikelihood(reqs[::-1], disable_tqdm=True)[::-1]
    assert a == b and all(isinstance(x, float) and g is False for x, g in a)
    with pytest.raises(NotImplementedError, match="loglikelihood_rolling"):
        lm.loglikelihood_rolling(reqs)


def test_encode_pair_moves_spaces_and_truncates_left(tokenizer):
    lm = make_lm(tokenizer, "a", "b")
    enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    ctx, cont = lm.encode_pair("To be, or ", "not")
    assert ctx == enc("To be, or") and ctx + cont == enc("To be, or not")
    lm.max_length = 6
    ctx, cont = lm.encode_pair("To be, or not to be, that is the", " question")
    full = enc("To be, or not to be, that is the question")
    assert len(ctx) + len(cont) == 6 and ctx + cont == full[-6:]
    assert cont == enc("To be, or not to be, that is the question")[-len(cont) :]


def test_encode_pair_is_whole_minus_context_even_where_tokens_merge(tokenizer):
    """lm-eval's and the release's rule: continuation = ids(context + continuation) minus the
    first len(ids(context)) ids, also when the boundary merges (no separate encoding)."""
    lm = make_lm(tokenizer, "a", "b")
    enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    merged = None
    for cut in range(1, len(TEXT) - 1):  # a split inside a word, where BPE merges across it
        context, continuation = TEXT[:cut], TEXT[cut:40]
        if context.rstrip() != context:
            continue
        whole, ctx = enc(context + continuation), enc(context)
        if whole[: len(ctx)] != ctx:
            merged = (context, continuation, whole, ctx)
            break
    assert merged is not None, "the test tokenizer never merges across a boundary"
    context, continuation, whole, ctx = merged
    got_ctx, got_cont = lm.encode_pair(context, continuation)
    assert got_ctx == ctx and got_cont == whole[len(ctx) :]
    assert got_cont != enc(continuation)  # what the former fallback encoded
