"""Estimator options (likelihood.estimate): common random numbers, exact enumeration, sequential
stopping, shared forwards; the per-request law against an exact law written here; the standard
protocol unchanged."""

import hashlib
import itertools
import math
from collections import Counter

import pytest
import torch
from lm_eval.api.instance import Instance
from test_eval_likelihood import MASK, Recorder, TinyBidirectional, exact_bound

from sinkprune.evaluation.estimator import Estimator, task_estimator
from sinkprune.evaluation.likelihood import (
    LLRequest,
    ModelScorer,
    estimate,
    mc_loglikelihood,
    resolved,
)

torch.set_num_threads(1)
CRN = Estimator(crn=True)


class RowLog:
    """A scorer that keeps, per request ids, the masked positions of every row it scores."""

    def __init__(self, inner):
        self.inner, self.rows = inner, {}

    def __call__(self, rows):
        for r in rows:
            self.rows.setdefault((r.seq, r.ctx), []).append(r.positions)
        return self.inner(rows)


def masks_of(req, est, mc_num, batch_size, doc, siblings=(), seed=0):
    """The masked positions of `req`'s rows when its item (doc) also holds `siblings`."""
    model = lambda ids: torch.zeros(ids.shape[0], ids.shape[1], 11)  # noqa: E731
    log = RowLog(ModelScorer(model, MASK, batch_size=batch_size))
    reqs = [LLRequest(req.context, req.continuation, ("t", doc))]
    reqs += [LLRequest(s.context, s.continuation, ("t", doc)) for s in siblings]
    estimate(reqs, None, MASK, est, mc_num, batch_size, seed=seed, scorer=log)
    return log.rows[(req.context + req.continuation, len(req.context))]


# ---------------------------------------------------------------- the law of a request ---
def exact_law(length, counts_of_k):
    """P(row 0 masks S0, row 1 masks S1) of the §7 estimator: k uniform, then uniform subsets of
    sizes counts_of_k[k] (hand-written below, not computed by the code under test)."""
    law = Counter()
    for x0, x1 in counts_of_k.values():
        for s0 in itertools.combinations(range(length), x0):
            for s1 in itertools.combinations(range(length), x1):
                law[(s0, s1)] += 1 / length / math.comb(length, x0) / math.comb(length, x1)
    return law


# ℓ = 3, b = 2: row 1 masks ⌊k + 1.5 + ½⌋ wrapped to 1..3 (test_mask_counts_by_hand)
HALF_UP = {1: (1, 3), 2: (2, 1), 3: (3, 2)}
HALF_EVEN = {1: (1, 2), 2: (2, 1), 3: (3, 1)}  # torch.round: 2.5 -> 2, 3.5 -> 4 -> 1, 4.5 -> 4 -> 1


def chi2(observed, law, n):
    assert set(observed) <= set(law), "a pattern with probability 0 was drawn"
    return sum((observed.get(c, 0) - n * p) ** 2 / (n * p) for c, p in law.items())


@pytest.mark.parametrize("est", [Estimator(), CRN], ids=["independent", "crn"])
def test_each_request_keeps_the_standard_law(est):
    """Both strata of a request (ℓ = 3, strata of 2 rows) follow the exact law over 2 000 items
    and seeds, also when its item holds a choice of another length (chi-square, 14 df, 0.1% level 36.1);
    half-to-even counts, the release's rounding, are rejected by the same data."""
    req = LLRequest((1, 2), (4, 5, 6))
    sibling = LLRequest((1, 2), (7, 8, 9, 4, 5))
    n, law, wrong = 2000, exact_law(3, HALF_UP), exact_law(3, HALF_EVEN)
    strata = [Counter(), Counter()]
    for doc in range(n):
        rows = masks_of(req, est, 4, 2, doc, siblings=[sibling], seed=doc)
        for j in range(2):
            strata[j][(rows[2 * j], rows[2 * j + 1])] += 1
    for observed in strata:
        assert chi2(observed, law, n) < 36.1
        assert sum((observed.get(c, 0) - n * p) ** 2 / (n * p) for c, p in wrong.items()) > 100


def test_crn_rows_of_other_lengths_share_the_noise_level():
    """Under CRN the k of a 3-token and of a 6-token choice (first row of a stratum) follow
    the same u: k3 = ⌈k6 / 2⌉ always; independent draws are uncorrelated."""
    short, long = LLRequest((1,), (4, 5, 6)), LLRequest((1,), (4, 5, 6, 7, 8, 9))
    pairs = {True: [], False: []}
    for crn in (True, False):
        for doc in range(200):
            a = masks_of(short, Estimator(crn=crn), 4, 4, doc, siblings=[long], seed=doc)
            b = masks_of(long, Estimator(crn=crn), 4, 4, doc, siblings=[short], seed=doc)
            pairs[crn].append((len(a[0]), len(b[0])))
    assert all(k3 == (k6 + 1) // 2 for k3, k6 in pairs[True])
    corr = torch.corrcoef(torch.tensor(pairs[False], dtype=torch.float).T)[0, 1].item()
    assert abs(corr) < 0.25, corr


def test_equal_length_choices_get_identical_masks_under_crn():
    a, b = LLRequest((1, 2), (4, 5, 6, 7)), LLRequest((1, 2), (8, 9, 4, 5))
    other = LLRequest((3,), (4, 5, 6, 7, 8))
    rows_a = masks_of(a, CRN, 16, 4, doc=0, siblings=[b, other])
    rows_b = masks_of(b, CRN, 16, 4, doc=0, siblings=[a])
    assert rows_a == rows_b and len(set(rows_a)) > 4
    # a request's draws depend on its item and length only: not on its siblings
    assert masks_of(a, CRN, 16, 4, doc=0) == rows_a
    assert masks_of(a, CRN, 16, 4, doc=1) != rows_a
    # independent draws differ between the two choices
    assert masks_of(a, Estimator(), 16, 4, 0, [b]) != masks_of(b, Estimator(), 16, 4, 0, [a])


# ------------------------------------------------------------------------- unbiasedness ---
def test_crn_estimate_is_unbiased():
    model = TinyBidirectional()
    context, continuation = (1, 2, 3, 4), (5, 6, 7)
    exact = exact_bound(model, list(context), list(continuation))
    reqs = [LLRequest(context, continuation, ("t", d)) for d in range(400)]
    reqs += [LLRequest(context, (5, 6, 8), ("t", d)) for d in range(400)]  # siblings
    est = torch.tensor([e.ll for e in estimate(reqs, model, MASK, CRN, 6, 3)[:400]])
    se = float(est.std()) / math.sqrt(len(est))
    assert abs(float(est.mean()) - exact) < 4 * se + 1e-6, (float(est.mean()), exact, se)


@pytest.mark.parametrize("family", ["bidirectional", "llada"])
def test_exact_enumeration_equals_brute_force(family):
    from helpers import tiny_llada

    model = TinyBidirectional() if family == "bidirectional" else tiny_llada()
    fn = model if family == "bidirectional" else (lambda ids: model(ids).logits)
    mask = MASK if family == "bidirectional" else model.config.mask_token_id
    cases = [((1, 2, 3), (4, 5, 6, 7)), ((), (5, 6)), ((2,), (3,)), ((1,), (2, 3, 4, 5, 6))]
    reqs = [LLRequest(c, x, ("t", i)) for i, (c, x) in enumerate(cases)]
    out = estimate(reqs, fn, mask, Estimator(exact_max_patterns=31), mc_num=128, batch_size=8)
    for (context, continuation), res in zip(cases, out, strict=True):
        brute = exact_bound_fn(fn, mask, list(context), list(continuation))
        assert res.exact and res.rows == 2 ** len(continuation) - 1
        assert res.ll == pytest.approx(brute, rel=1e-5, abs=1e-5)
    # over the limit: Monte Carlo with mc_num rows
    big = estimate(reqs[:1], fn, mask, Estimator(exact_max_patterns=14), mc_num=16, batch_size=8)
    assert not big[0].exact and big[0].rows == 16


def exact_bound_fn(fn, mask, context, continuation):
    """exact_bound of test_eval_likelihood for any logits function and mask id."""
    ell, ctx = len(continuation), len(context)
    seq = torch.tensor(context + continuation)
    total = 0.0
    for x in range(1, ell + 1):
        subsets = list(itertools.combinations(range(ell), x))
        acc = 0.0
        for s in subsets:
            noised = seq.clone()
            pos = [ctx + i for i in s]
            noised[pos] = mask
            logp = torch.log_softmax(fn(noised[None])[0].detach().float(), -1)
            acc += -sum(float(logp[p, seq[p]]) for p in pos)
        total += (1 / ell) * (ell / x) * acc / len(subsets)
    return -total


# ------------------------------------------------------------- standard protocol kept ---
def test_standard_draws_pinned():
    """Today's masks, recorded before the estimator options existed (sha256 of the inputs)."""
    rec = Recorder(TinyBidirectional())
    for ctx, cont, mc, b in [([1, 2, 3], [4, 5, 6, 7], 10, 4), ([], [5, 6, 7, 8, 9], 16, 16)]:
        mc_loglikelihood(rec, ctx, cont, MASK, mc_num=mc, batch_size=b, seed=7)
    mc_loglikelihood(rec, [2], [3], MASK, mc_num=3, batch_size=8, seed=7)
    h = hashlib.sha256()
    for x in rec.inputs:
        h.update(x.numpy().tobytes())
    expected = "68032cb34217213d049e83c4e31cd27450c927ec1806fd1bdb7092f12e9bbbf9"
    assert h.hexdigest() == expected


def test_engine_without_options_reproduces_standard_draws():
    """`estimate` with every option off draws today's masks (values equal up to float32
    summation order); the lm-eval model keeps the per-request path, bit for bit."""
    model = TinyBidirectional()
    cases = [((1, 2, 3), (4, 5, 6, 7)), ((), (5, 6, 7, 8, 9)), ((2,), (3,)), ((1,), ())]
    reqs = [LLRequest(c, x) for c, x in cases]
    out = estimate(reqs, model, MASK, Estimator(), mc_num=10, batch_size=4, seed=3)
    for (c, x), res in zip(cases, out, strict=True):
        ref = mc_loglikelihood(model, c, x, MASK, mc_num=10, batch_size=4, seed=3)
        assert res.ll == pytest.approx(ref, rel=1e-6, abs=1e-6)
        assert res.rows == (10 if x else 0) and not res.exact


def test_order_and_batching_do_not_change_a_request():
    model = TinyBidirectional(seed=3)
    reqs = [
        LLRequest((1, 2), (3 + (i % 5), 4, 5, 6)[: 1 + i % 4], ("t", i // 3)) for i in range(30)
    ]
    est = Estimator(crn=True, exact_max_patterns=3, stopping=True, round=4, cap=16)
    a = estimate(reqs, model, MASK, est, mc_num=16, batch_size=8, seed=1)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(0)).tolist()
    b = estimate([reqs[i] for i in perm], model, MASK, est, 16, 32, seed=1, max_active=3)
    b = [b[perm.index(i)] for i in range(30)]
    for x, y in zip(a, b, strict=True):
        assert x.rows == y.rows and x.exact == y.exact
        assert x.ll == pytest.approx(y.ll, rel=1e-6)


# ----------------------------------------------------------------------------- stopping ---
def test_resolved_rule_by_hand():
    # choice 1 leads (lower loss); differences to choice 0: [1, 3] -> mean 2, sd √2, se 1
    losses = torch.tensor([[5.0, 7.0], [4.0, 4.0]], dtype=torch.float64)
    norms = torch.tensor([1.0, 1.0], dtype=torch.float64)
    assert resolved(losses, norms, 2.0, "acc")  # 2 >= 2·1
    assert not resolved(losses, norms, 2.1, "acc")
    # normalised by 10 and 1 characters choice 0 leads: differences 3.5, 3.3 -> se 0.1
    long_first = torch.tensor([10.0, 1.0], dtype=torch.float64)
    assert resolved(losses, long_first, 33.0, "acc_norm")
    assert not resolved(losses, long_first, 35.0, "acc_norm")
    assert not resolved(losses, long_first, 35.0, "both")
    wobbly = torch.tensor([[5.0, 7.0], [3.0, 5.5]], dtype=torch.float64)  # diffs 2, 1.5
    assert resolved(wobbly, norms, 2.0, "acc")  # mean 1.75, se 0.25
    assert not resolved(wobbly, torch.tensor([1.0, 0.5], dtype=torch.float64), 2.0, "both")
    # identical rows (identical choices under CRN): a tie nothing can resolve
    assert resolved(torch.ones(2, 3, dtype=torch.float64), norms, 2.0, "acc")
    assert not resolved(losses[:1], norms[:1], 2.0, "acc")  # one choice: nothing to decide


def test_stopping_stops_clear_items_and_caps_close_ones():
    model = TinyBidirectional(seed=4)
    clear = [LLRequest((1, 2), (3, 4, 5, 6), ("t", 0)), LLRequest((1, 2), (9, 9, 9, 9), ("t", 0))]
    ids = [LLRequest((1, 2), (3, 4, 5, 6), ("t", 1)), LLRequest((1, 2), (3, 4, 5, 6), ("t", 1))]
    single = [LLRequest((1,), (3, 4, 5), ("t", 2))]
    est = Estimator(crn=True, stopping=True, round=4, z=2.0, cap=24)
    out = estimate(clear + ids + single, model, MASK, est, mc_num=128, batch_size=8)
    scores = [e.ll for e in out]
    assert abs(scores[0] - scores[1]) > 5 and [e.rows for e in out[:2]] == [4, 4]
    assert [e.rows for e in out[2:4]] == [4, 4] and scores[2] == scores[3]  # identical masks
    assert out[4].rows == 24  # nothing to decide: runs to the cap
    # a near-tie runs to the cap; cap null means mc_num
    close = [LLRequest((1, 2), (3, 4, 5, 6), ("t", 3)), LLRequest((1, 2), (3, 4, 5, 7), ("t", 3))]
    huge_z = Estimator(crn=True, stopping=True, round=4, z=1e6, cap=None)
    assert [e.rows for e in estimate(close, model, MASK, huge_z, 12, 8)] == [12, 12]


def test_elimination_stops_sampling_settled_choices_only():
    """A choice far behind stops after the first round; a noisy near-tie goes on to the cap with
    the same rows as without elimination."""
    gen = torch.Generator().manual_seed(0)

    def noisy(ids):  # token 9 is very unlikely; everything else is noise
        logits = torch.randn(*ids.shape, 11, generator=gen)
        logits[..., 9] -= 20.0
        return logits

    item = [LLRequest((1, 2), c, ("t", 0)) for c in [(3, 4, 5, 6), (3, 4, 5, 7), (9, 9, 9, 9)]]
    opts = dict(crn=True, stopping=True, round=4, z=2.0, cap=16)
    plain = estimate(item, noisy, MASK, Estimator(**opts), 16, 8)
    assert [e.rows for e in plain] == [16, 16, 16]
    elim = estimate(item, noisy, MASK, Estimator(**opts, eliminate=True), 16, 8)
    assert [e.rows for e in elim] == [16, 16, 4]
    assert elim[2].ll < min(elim[0].ll, elim[1].ll) - 20


def test_fewer_rows_draw_a_prefix_of_the_standard_rows():
    """mc_num 32 in strata of 32 draws the first 32 rows of mc_num 128 (the bench's
    independent-32 setting reads them from its standard runs)."""
    req = LLRequest((1, 2), (4, 5, 6, 7, 8))
    assert masks_of(req, Estimator(), 32, 32, 0) == masks_of(req, Estimator(), 128, 32, 0)[:32]
    model = TinyBidirectional()
    full = estimate([req], model, MASK, Estimator(), 128, 32, keep_rows=True)[0]
    short = estimate([req], model, MASK, Estimator(), 32, 32)[0]
    assert len(full.row_losses) == 128
    assert short.ll == pytest.approx(-sum(full.row_losses[:32]) / 32, rel=1e-6)


# ------------------------------------------------------------------ lm-eval and config ---
@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    from sinkprune.evaluation.lm import SinkpruneDLM
    from sinkprune.models import LLaDAConfig, LLaDAModelLM, get_adapter
    from sinkprune.tokenizer import train_bpe, wrap

    f = tmp_path_factory.mktemp("tok") / "train.txt"
    f.write_text("To be, or not to be, that is the question:\nWhether 'tis nobler\n" * 20)
    tok = wrap(train_bpe([f], 300))
    torch.manual_seed(0)
    cfg = LLaDAConfig(
        d_model=32, n_layers=1, n_heads=2, mlp_hidden_size=64, vocab_size=len(tok),
        max_sequence_length=32, mask_token_id=tok.mask_token_id,
    )  # fmt: skip
    return SinkpruneDLM(adapter=get_adapter(LLaDAModelLM(cfg).eval()), tokenizer=tok)


def instances(task="t"):
    items = [
        ("To be,", [" or not to be, that", " that is the question"]),
        ("", ["the question: whether", "the nobler to be, or"]),
    ]
    return [
        Instance("multiple_choice", {}, (ctx, ch), i, metadata=(task, doc, 1))
        for doc, (ctx, choices) in enumerate(items)
        for i, ch in enumerate(choices)
    ]


def test_lm_every_option_off_is_bit_identical_to_the_standard_protocol(lm):
    lm.set_settings(mc_num=6, batch_size=4, estimator={})
    got = lm.loglikelihood(instances(), disable_tqdm=True)
    for req, (ll, greedy) in zip(instances(), got, strict=True):
        ctx, cont = lm.encode_pair(*req.args)
        expected = mc_loglikelihood(lm._logits, ctx, cont, lm.mask_id, 6, 4, seed=lm.seed)
        assert ll == expected and greedy is False


def test_lm_groups_choices_by_doc_id(lm):
    lm.set_settings(mc_num=8, batch_size=8, estimator={"crn": True})
    got = lm.loglikelihood(instances(), disable_tqdm=True)
    again = lm.loglikelihood(instances()[::-1], disable_tqdm=True)[::-1]
    assert [g[0] for g in got] == pytest.approx([a[0] for a in again], rel=1e-6)
    assert lm.get_model_info()["estimator"]["crn"] is True
    # the task name is part of the item: another task draws other masks
    other = lm.loglikelihood(instances("u"), disable_tqdm=True)
    assert [g[0] for g in got] != [o[0] for o in other]
    bare = [Instance("loglikelihood", {}, ("To be,", " or not"), 0)]
    with pytest.raises(ValueError, match="doc_id"):
        lm.loglikelihood(bare, disable_tqdm=True)
    lm.set_settings(estimator={})


def test_estimator_options_are_checked_and_merged():
    with pytest.raises(ValueError, match="evaluation.estimator.round"):
        Estimator(round=1)
    with pytest.raises(ValueError, match="evaluation.estimator.eliminate"):
        Estimator(eliminate=1)
    with pytest.raises(ValueError, match="unknown key"):
        Estimator.from_dict({"crm": True})
    config = {
        "evaluation": {
            "estimator": {"crn": True, "stopping": True, "cap": 32},
            "tasks": {
                "a": {},
                "b": {"estimator": {"stopping": False}},
                "c": {"metric": "acc_norm"},
            },
        }
    }
    assert task_estimator(config, "a") == Estimator(crn=True, stopping=True, cap=32).as_dict()
    assert task_estimator(config, "b")["stopping"] is False
    assert task_estimator(config, "b")["crn"] is True
    # stop_on: metric (the config's default) follows the task's metric
    assert task_estimator(config, "c")["stop_on"] == "acc_norm"
    assert task_estimator(config, "a")["stop_on"] == "acc"
    config["evaluation"]["tasks"]["b"]["estimator"]["stop_on"] = "f1"
    with pytest.raises(ValueError, match="evaluation.tasks.b.estimator"):
        task_estimator(config, "b")
    losses = torch.ones(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="stop_on"):
        resolved(losses, torch.ones(2, dtype=torch.float64), 2.0, "metric")


def test_lm_results_do_not_depend_on_the_chunking(lm, monkeypatch):
    import sinkprune.evaluation.lm as lm_module

    lm.set_settings(mc_num=8, batch_size=8, estimator={"crn": True, "stopping": True, "round": 2})
    whole = lm.loglikelihood(instances(), disable_tqdm=True)
    monkeypatch.setattr(lm_module, "ITEMS_PER_CALL", 1)
    chunked = lm.loglikelihood(instances(), disable_tqdm=True)
    assert [x[0] for x in chunked] == pytest.approx([x[0] for x in whole], rel=1e-6)
    lm.set_settings(estimator={})
