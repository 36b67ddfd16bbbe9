"""MC log-likelihood estimator (method.md §7) against exact enumeration and hand computations."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sinkprune.evaluation.likelihood import (
    ar_loglikelihood,
    mask_counts,
    mc_loglikelihood,
    request_seed,
)

torch.set_num_threads(1)
V, MASK = 11, 10


class TinyBidirectional(nn.Module):
    """Stand-in masked LM: token + position embeddings, a pooled bidirectional mix, a head."""

    def __init__(self, seed=0, d=16, max_len=32):
        super().__init__()
        torch.manual_seed(seed)
        self.emb, self.pos = nn.Embedding(V, d), nn.Embedding(max_len, d)
        self.mix, self.out = nn.Linear(d, d), nn.Linear(d, V)
        for p in self.parameters():
            nn.init.normal_(p, std=1.0)

    @torch.no_grad()
    def forward(self, ids):
        h = self.emb(ids) + self.pos(torch.arange(ids.shape[1]))
        h = h + torch.tanh(self.mix(h)).mean(dim=1, keepdim=True)
        return self.out(h)


class Recorder:
    """Wraps a logits function and keeps every input batch."""

    def __init__(self, fn):
        self.fn, self.inputs = fn, []

    def __call__(self, ids):
        self.inputs.append(ids.clone())
        return self.fn(ids)


def exact_bound(model, context, continuation):
    """E[estimate] by enumeration: Σ_x (1/ℓ)(ℓ/x) mean_{|S|=x} Σ_{i∈S} CE_i, negated."""
    ell, ctx = len(continuation), len(context)
    seq = torch.tensor(context + continuation)
    total = 0.0
    for x in range(1, ell + 1):
        subsets = list(itertools.combinations(range(ell), x))
        acc = 0.0
        for s in subsets:
            noised = seq.clone()
            pos = [ctx + i for i in s]
            noised[pos] = MASK
            logp = torch.log_softmax(model(noised[None])[0], -1)
            acc += -sum(float(logp[p, seq[p]]) for p in pos)
        total += (1 / ell) * (ell / x) * acc / len(subsets)
    return -total


def test_mask_counts_by_hand():
    # ℓ=3, b=2: row 1 gets k+1.5 rounded half up -> 3, 4->1, 5->2 (uniform over k)
    assert [mask_counts(k, 3, 2) for k in (1, 2, 3)] == [[1, 3], [2, 1], [3, 2]]
    # b = ℓ: every count 1..ℓ exactly once per batch
    for k in range(1, 6):
        assert sorted(mask_counts(k, 5, 5)) == [1, 2, 3, 4, 5]


def test_mean_matches_exact_enumeration():
    model = TinyBidirectional()
    context, continuation = [1, 2, 3, 4], [5, 6, 7]
    exact = exact_bound(model, context, continuation)
    est = torch.tensor(
        [
            mc_loglikelihood(model, context, continuation, MASK, mc_num=6, batch_size=3, seed=s)
            for s in range(400)
        ]
    )
    se = float(est.std()) / math.sqrt(len(est))
    assert abs(float(est.mean()) - exact) < 4 * se + 1e-6, (float(est.mean()), exact, se)


def test_spread_shrinks_like_inverse_sqrt_mc_num():
    model = TinyBidirectional(seed=1)
    context, continuation = [1, 2], [3, 4, 5, 6, 7]

    def spread(mc_num):
        return torch.tensor(
            [
                mc_loglikelihood(model, context, continuation, MASK, mc_num, 4, seed=s)
                for s in range(120)
            ]
        ).std()

    ratio = float(spread(4) / spread(64))  # 16x the draws -> ~4x smaller spread
    assert 2.8 < ratio < 5.8, ratio


def test_context_never_masked_and_counts_stratified():
    model = TinyBidirectional()
    rec = Recorder(model)
    context, continuation = [1, 2, 3], [4, 5, 6, 7, 8, 9]
    mc_loglikelihood(rec, context, continuation, MASK, mc_num=60, batch_size=6, seed=3)
    assert len(rec.inputs) == 10
    seen = []
    for batch in rec.inputs:
        assert torch.equal(batch[:, :3], torch.tensor(context).expand(6, -1))
        counts = (batch[:, 3:] == MASK).sum(1).tolist()
        assert sorted(counts) == [1, 2, 3, 4, 5, 6]  # b = ℓ: a permutation of 1..ℓ
        seen += counts
    # b < ℓ: counts still span 1..ℓ over batches, and rows are stratified (ℓ/b apart)
    rec.inputs.clear()
    mc_loglikelihood(rec, context, continuation, MASK, mc_num=200, batch_size=2, seed=4)
    counts = [c for b in rec.inputs for c in (b[:, 3:] == MASK).sum(1).tolist()]
    assert set(counts) == set(range(1, 7))
    for b in rec.inputs:
        a, c = (b[:, 3:] == MASK).sum(1).tolist()
        assert (c - a) % 6 == 3


def manual_estimate(rec_inputs, seq, ctx, ell, fn, cfg):
    """−mean over rows of Σ_masked CE / (x/ℓ), recomputed from the recorded inputs."""
    losses = []
    for batch in rec_inputs:
        if cfg > 0:
            cond, _ = batch.chunk(2)
            unc = cond.clone()
            unc[:, :ctx] = MASK
            c, u = fn(cond), fn(unc)
            logits = u + (cfg + 1) * (c - u)
        else:
            cond, logits = batch, fn(batch)
        for r in range(cond.shape[0]):
            m = cond[r] == MASK
            ce = F.cross_entropy(logits[r][m], seq[m], reduction="sum")
            losses.append(float(ce) / (int(m.sum()) / ell))
    return -sum(losses) / len(losses)


@pytest.mark.parametrize("cfg", [0.0, 0.5])
def test_estimate_and_cfg_against_manual(cfg):
    model = TinyBidirectional(seed=2)
    rec = Recorder(model)
    context, continuation = [1, 2, 3], [4, 5, 6, 7]
    seq = torch.tensor(context + continuation)
    est = mc_loglikelihood(rec, context, continuation, MASK, 8, 4, cfg=cfg, seed=5)
    # cfg = 0 runs only the conditional pass; cfg > 0 doubles the batch
    assert all(b.shape[0] == (8 if cfg else 4) for b in rec.inputs)
    manual = manual_estimate(rec.inputs, seq, 3, 4, model, cfg)
    assert est == pytest.approx(manual, rel=1e-5)


def test_seeded_per_request():
    model = TinyBidirectional()
    a = mc_loglikelihood(model, [1, 2], [3, 4, 5], MASK, 8, 4, seed=0)
    mc_loglikelihood(model, [2, 2], [3, 4], MASK, 8, 4, seed=0)  # another request in between
    assert mc_loglikelihood(model, [1, 2], [3, 4, 5], MASK, 8, 4, seed=0) == a
    assert mc_loglikelihood(model, [1, 2], [3, 4, 5], MASK, 8, 4, seed=1) != a
    assert request_seed(0, [1, 2], [3]) != request_seed(0, [1], [2, 3])


def test_partial_last_batch_uses_mc_num_rows():
    rec = Recorder(TinyBidirectional())
    mc_loglikelihood(rec, [1], [2, 3, 4], MASK, mc_num=10, batch_size=4, seed=0)
    assert [b.shape[0] for b in rec.inputs] == [4, 4, 2]


def test_ar_loglikelihood_by_hand():
    model = TinyBidirectional()  # used as a "causal" LM: logits at i predict i+1
    context, continuation = [1, 2, 3], [4, 5]
    logp = torch.log_softmax(model(torch.tensor([[1, 2, 3, 4]]))[0], -1)
    expected = float(logp[2, 4] + logp[3, 5])
    ll, greedy = ar_loglikelihood(model, context, continuation)
    assert ll == pytest.approx(expected, rel=1e-5)
    assert greedy == bool(logp[2].argmax() == 4 and logp[3].argmax() == 5)
