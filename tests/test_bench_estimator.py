"""The estimator benchmarks (sinkprune.bench.agreement, .likelihood): their pieces by hand, and
one quick run of each (tiny shapes: the numbers are not reported)."""

import pytest
import torch
from helpers import tiny_llada

from sinkprune.bench import agreement, likelihood
from sinkprune.evaluation.estimator import Estimator
from sinkprune.evaluation.likelihood import LLRequest, ModelScorer, Row

torch.set_num_threads(1)


def test_cached_scorer_counts_every_row_and_computes_each_once():
    calls = []
    inner = ModelScorer(lambda ids: calls.append(ids.shape) or torch.zeros(*ids.shape, 5), 4)
    cached = agreement.CachedScorer(inner)
    rows = [Row((1, 2, 3), 1, (0,)), Row((1, 2, 3), 1, (1,)), Row((1, 2, 3), 1, (0,))]
    assert cached(rows) == [pytest.approx(1.6094379)] * 3  # log 5 for one masked token
    cached(rows[:1])
    assert cached.asked == 4 and len(cached.cache) == 2 and calls == [(2, 3)]


def task_of(values_per_item, lengths=None):
    reqs, spans, n = [], [], 0
    for item in values_per_item:
        spans.append((n, n + len(item)))
        reqs += [LLRequest((), (5,), ("t", len(spans)))] * len(item)
        n += len(item)
    lengths = lengths or [1.0] * n
    return agreement.Task("t", reqs, spans, [0] * len(spans), lengths)


def test_decisions_and_resolved_items_by_hand():
    task = task_of([[-1.0, -2.0, -1.5], [-3.0, -3.0]], lengths=[1.0, 1.0, 4.0, 1.0, 2.0])
    values = [x for item in [[-1.0, -2.0, -1.5], [-3.0, -3.0]] for x in item]
    assert agreement.decisions(values, task) == [0, 0]  # tie: the first, as np.argmax
    assert agreement.decisions(values, task, norm=True) == [2, 1]  # -1.5/4, -3/2
    # leader -1 vs -1.5 with se 0.1 each: gap 0.5 >= 3 * 0.141; a tie is never resolved
    se = [0.1, 0.1, 0.1, 0.0, 0.0]
    assert agreement.resolved_items(values, se, task) == [True, False]
    assert agreement.resolved_items(values, [0.2] * 5, task) == [False, False]  # 0.5 < 0.85


def test_settings_and_fast_default():
    names = [s.name for s in agreement.SETTINGS]
    assert len(set(names)) == len(names) and agreement.SETTINGS[0] is agreement.STANDARD
    assert agreement.FAST in agreement.SETTINGS
    assert agreement.STANDARD.pooled and not agreement.FAST.pooled
    assert len(agreement.FULL.ref_seeds) * agreement.BASE_ROWS - agreement.BASE_ROWS >= 1024


def test_throughput_counts_forwards_on_synthetic_requests():
    model = tiny_llada()
    reqs = likelihood.synthetic_requests(3, 2, context_len=4, continuation_len=5, vocab=39)
    assert len(reqs) == 6 and len({r.item for r in reqs}) == 3
    assert all(len(r.continuation) == 5 and max(r.continuation) < 39 for r in reqs)
    fast = Estimator(crn=True, stopping=True, round=4, cap=8)
    settings = [("standard", Estimator(), 8, 4), ("fast", fast, 8, 64)]
    rows = likelihood.throughput(lambda x: model(x).logits, 39, reqs, settings)
    assert rows[0]["forwards"] == 6 * 8 and rows[0]["model_calls"] == 6 * 2
    assert 6 * 4 <= rows[1]["forwards"] <= 6 * 8
    assert rows[1]["model_calls"] <= 2  # rounds of all items share one forward each
    assert all(r["requests_per_s"] > 0 for r in rows)


def test_device_check_runs_on_cpu():
    from sinkprune.models import get_adapter

    out = likelihood.device_check(get_adapter(tiny_llada()), "cpu", 2, 2, 6, 4)
    assert out["requests"] == 4 and len(out["rows"]) == 2 and out["speedup"] > 0
    assert out["rows"][0]["forwards"] == 4 * 128


@pytest.fixture(scope="module")
def quick_results():
    from sinkprune.bench import run_one

    return {name: run_one(name, quick=True) for name in ("agreement", "likelihood")}


def test_quick_agreement_run(quick_results):
    res = quick_results["agreement"]
    assert {"name", "title", "shapes", "rows", "headline", "markdown"} <= set(res)
    rows = {r["setting"]: r for r in res["rows"]}
    assert set(rows) == {s.name for s in agreement.QUICK.settings()}
    assert agreement.FAST.name in rows and len(rows) >= 4
    std = rows[agreement.STANDARD.name]
    assert std["forwards_ratio"] == pytest.approx(1.0) and std["diff_vs_standard"] == 0
    assert rows["independent 32"]["forwards_ratio"] == pytest.approx(0.25)
    for r in res["rows"]:
        assert 0 <= r["agree"] <= 1 and 0 <= r["acc"] <= 1 and r["forwards_ratio"] > 0
        assert set(r["per_task"]) == set(res["shapes"]["tasks"])
    assert res["markdown"].startswith("## ") and "| setting |" in res["markdown"]
    assert set(res["variance_ratio_crn_vs_independent"]) == {*res["shapes"]["tasks"], "pooled"}


def test_quick_likelihood_run(quick_results):
    res = quick_results["likelihood"]
    standard, fast, one = res["rows"]
    n = res["shapes"]["requests"]
    assert standard["forwards"] == 128 * n and standard["speedup"] == 1
    assert fast["forwards"] == one["forwards"] < standard["forwards"]
    assert fast["model_calls"] <= one["model_calls"]
