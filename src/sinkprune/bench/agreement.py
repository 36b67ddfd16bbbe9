"""Decision agreement of the log-likelihood estimator options at a fraction of the forwards.

For a dense and a Wanda-pruned small diffusion LM (`_dlm`: built from the pip corpus in ~2 min)
and the embedded multiple-choice tasks plus minimal pairs, every answer choice gets a
high-budget reference: its exact value when 2^ℓ − 1 ≤ 1 023 (enumeration), else the mean of
9 × 128 = 1 152 independent rows. The 9 blocks of 128 rows are the standard protocol run with
seeds 0..8 (`mc_loglikelihood`'s draws); each of those runs is compared with the reference of
the other 8 blocks (1 024 rows), so no run is compared with its own rows. Every other setting
runs with seeds 100.. through `likelihood.estimate`.

Per (model, task, setting): agreement of the argmax decision with the reference's (mean over
seeds; ± is the standard error over items of the per-item agreement rate), the same on items the
reference resolves (leader ahead of every other choice by ≥ 3 of the reference's standard errors),
accuracy, the acc_norm decision's agreement, and the forwards *counted* (rows the estimator asked
the scorer for) per item relative to 128 independent rows per choice. Also the variance of the
leader − runner-up difference at equal mc_num (32), common random numbers against independent
draws (issue #13).

A scorer cache (one forward per distinct (request, mask pattern)) keeps the grid affordable; the
counted forwards are the rows asked for, cache hits included.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass

import torch

from sinkprune.evaluation.estimator import Estimator
from sinkprune.evaluation.likelihood import LLRequest, ModelScorer, Row, estimate

from . import _dlm

log = logging.getLogger(__name__)

BASE_ROWS = 128  # the standard protocol's rows per choice
REF_EXACT = 1023  # reference: enumerate when 2^ℓ − 1 ≤ this
RESOLVED_Z = 3.0
VARIANCE_MC = 32


@dataclass(frozen=True)
class Plan:
    """Sizes of one run: items per task, training steps of the bench model, the standard-protocol
    seeds (together the reference: 9 × 128 = 1 152 rows, 1 024 left out of each run) and the
    seeds of every other setting."""

    n_items: int = 64
    train_steps: int | None = None  # None: _dlm.TRAIN's
    ref_seeds: tuple[int, ...] = tuple(range(9))
    seeds: tuple[int, ...] = tuple(range(100, 105))
    quick: bool = False  # the tests' shapes: a one-layer model, a few settings

    def build(self) -> _dlm.Setup:
        return _dlm.build(self.n_items, self.train_steps, self.quick)

    def settings(self) -> tuple[Setting, ...]:
        if not self.quick:
            return SETTINGS
        return tuple(s for s in SETTINGS if s in (STANDARD, FAST) or s.name.endswith(" 32"))


FULL = Plan()
QUICK = Plan(n_items=3, train_steps=20, ref_seeds=(0, 1, 2), seeds=(100, 101), quick=True)


@dataclass(frozen=True)
class Setting:
    name: str
    estimator: Estimator
    mc_num: int = 128
    batch_size: int = 32  # strata of min(batch_size, mc_num) rows when not stopping

    @property
    def pooled(self) -> bool:
        """A prefix of the standard protocol's runs (same draws: strata of 32 rows, seeds 0..)."""
        return self.estimator.standard and self.batch_size == 32 and self.mc_num % 32 == 0


def stop(cap: int, z: float = 2.0, rnd: int = 8, crn: bool = True, eliminate: bool = False,
         stop_on: str = "acc", exact: int = 7) -> Estimator:  # fmt: skip
    return Estimator(crn=crn, exact_max_patterns=exact, stopping=True, round=rnd, z=z, cap=cap,
                     eliminate=eliminate, stop_on=stop_on)  # fmt: skip


STANDARD = Setting("standard (128 independent)", Estimator(), 128)
SETTINGS = (
    STANDARD,
    Setting("independent 32", Estimator(), 32),
    Setting("independent 8 (embedded default before #19)", Estimator(), 8, 8),
    Setting("crn 32", Estimator(crn=True), 32),
    Setting("crn+exact7 32", Estimator(crn=True, exact_max_patterns=7), 32),
    Setting("stop r8 z2 cap32 independent", stop(32, crn=False)),
    Setting("stop r8 z2 cap32", stop(32)),
    Setting("stop r8 z2 cap64", stop(64)),
    Setting("stop r4 z2 cap64", stop(64, rnd=4)),
    Setting("stop r4 z2.5 cap64", stop(64, z=2.5, rnd=4)),
    Setting("stop r4 z2 cap48 eliminate", stop(48, rnd=4, eliminate=True)),
    Setting("stop r4 z2 cap64 eliminate", stop(64, rnd=4, eliminate=True)),
    Setting("stop r4 z2.5 cap64 eliminate", stop(64, z=2.5, rnd=4, eliminate=True)),
    Setting("stop r4 z2 cap64, acc+acc_norm", stop(64, rnd=4, stop_on="both")),
)

#: The fast estimator of config/fast_estimator.yaml and the embedded default (config/config.yaml):
#: the cheapest setting of the table whose agreement is at least the standard protocol's (set
#: from a full `make bench`).
FAST = next(s for s in SETTINGS if s.name == "stop r4 z2 cap64")


class CachedScorer:
    """Scores each distinct (ids, context, mask) once with `inner`; `asked` counts every row."""

    def __init__(self, inner: ModelScorer) -> None:
        self.inner, self.cache, self.asked = inner, {}, 0

    def __call__(self, rows: list[Row]) -> list[float]:
        self.asked += len(rows)
        keys = [(r.seq, r.ctx, r.positions) for r in rows]
        todo = {k: r for k, r in zip(keys, rows, strict=True) if k not in self.cache}
        if todo:
            values = self.inner(list(todo.values()))
            self.cache.update(zip(todo, values, strict=True))
        return [self.cache[k] for k in keys]


@dataclass
class Task:
    """The requests of one task's items, flattened, with each item's slice and label."""

    name: str
    requests: list[LLRequest]
    spans: list[tuple[int, int]]  # item i's choices are requests[a:b]
    labels: list[int]
    lengths: list[float]  # acc_norm divisors


def task_requests(items: list[_dlm.Item], encode_pair) -> Task:
    reqs, spans, lengths = [], [], []
    for item in items:
        a = len(reqs)
        for cont, choice in zip(item.continuations, item.choices, strict=True):
            ctx, ids = encode_pair(item.context, cont)
            reqs.append(LLRequest(tuple(ctx), tuple(ids), (item.task, item.doc_id), len(choice)))
            lengths.append(float(len(choice)))
        spans.append((a, len(reqs)))
    return Task(items[0].task, reqs, spans, [i.label for i in items], lengths)


def decisions(values: list[float], task: Task, norm: bool = False) -> list[int]:
    out = []
    for a, b in task.spans:
        v = [values[i] / (task.lengths[i] if norm else 1.0) for i in range(a, b)]
        out.append(max(range(len(v)), key=lambda j: (v[j], -j)))  # first maximum (np.argmax)
    return out


def resolved_items(ref: list[float], se: list[float], task: Task, norm: bool = False) -> list[bool]:
    """The reference's leader is ≥ RESOLVED_Z standard errors ahead of every other choice."""
    out = []
    for a, b in task.spans:
        scale = [task.lengths[i] if norm else 1.0 for i in range(a, b)]
        v = [ref[i] / s for i, s in zip(range(a, b), scale, strict=True)]
        e = [se[i] / s for i, s in zip(range(a, b), scale, strict=True)]
        lead = max(range(len(v)), key=lambda j: (v[j], -j))
        ok = True
        for j in range(len(v)):
            if j != lead:
                gap, sd = v[lead] - v[j], math.hypot(e[lead], e[j])
                ok &= gap > 0 and gap >= RESOLVED_Z * sd
        out.append(ok)
    return out


def run_model(adapter, task: Task, plan: Plan = FULL, batch_size: int = 64) -> dict:
    """Every setting × seed on one model and task: {setting name: [per seed: (ll, rows)]}, the
    reference (value and se per request) and the leave-one-out references of the pooled seeds."""
    fn, mask_id = adapter.mdm_logits, int(adapter.mask_token_id)
    scorer = CachedScorer(ModelScorer(fn, mask_id, batch_size=batch_size))

    def go(est: Estimator, mc_num: int, stratum: int, seed: int, keep_rows: bool = False):
        asked = scorer.asked
        res = estimate(task.requests, fn, mask_id, est, mc_num, stratum, seed=seed,
                       scorer=scorer, keep_rows=keep_rows)  # fmt: skip
        assert scorer.asked - asked == sum(r.rows for r in res)  # counted = reported
        return res

    exact_ref = [r.ll for r in go(Estimator(exact_max_patterns=REF_EXACT), BASE_ROWS, 32, 0)]
    is_exact = [(1 << len(r.continuation)) - 1 <= REF_EXACT for r in task.requests]
    standard = [go(STANDARD.estimator, BASE_ROWS, 32, s, keep_rows=True) for s in plan.ref_seeds]
    pool = [[r.ll for r in run] for run in standard]
    n = len(plan.ref_seeds)
    ref, ref_se, loo = [], [], [[] for _ in plan.ref_seeds]
    for i in range(len(task.requests)):
        col = [p[i] for p in pool]
        mean = sum(col) / n
        if is_exact[i]:
            ref.append(exact_ref[i])
            ref_se.append(0.0)
        else:
            ref.append(mean)
            ref_se.append(math.sqrt(sum((x - mean) ** 2 for x in col) / (n - 1) / n))
        for s in range(n):
            loo[s].append(exact_ref[i] if is_exact[i] else (mean * n - col[s]) / (n - 1))
    runs = {}
    for st in plan.settings():
        if st.pooled:  # the first mc_num rows of the standard runs: the same draws (tested)
            runs[st.name] = [
                ([-sum(r.row_losses[: st.mc_num]) / st.mc_num for r in run],
                 [st.mc_num] * len(run))
                for run in standard
            ]  # fmt: skip
        else:
            runs[st.name] = [
                ([r.ll for r in res], [r.rows for r in res])
                for res in (go(st.estimator, st.mc_num, st.batch_size, s) for s in plan.seeds)
            ]
    return {"ref": ref, "ref_se": ref_se, "loo": loo, "runs": runs, "computed": len(scorer.cache),
            "asked": scorer.asked}  # fmt: skip


def summarise(task: Task, out: dict, settings: tuple[Setting, ...] = SETTINGS) -> list[dict]:
    """One row per setting: agreement (all, resolved), acc, acc_norm agreement, forwards ratio,
    each with per-item rates for pooling and paired comparisons."""
    ref_dec = decisions(out["ref"], task)
    ref_norm = decisions(out["ref"], task, norm=True)
    resolved = resolved_items(out["ref"], out["ref_se"], task)
    base = [BASE_ROWS * (b - a) for a, b in task.spans]
    rows = []
    for st in settings:
        agree, correct, agree_norm, fwd = [], [], [], []
        for s, (ll, nrows) in enumerate(out["runs"][st.name]):
            refs = decisions(out["loo"][s], task) if st.pooled else ref_dec
            refs_norm = decisions(out["loo"][s], task, True) if st.pooled else ref_norm
            dec, dec_norm = decisions(ll, task), decisions(ll, task, norm=True)
            agree.append([int(d == r) for d, r in zip(dec, refs, strict=True)])
            correct.append([int(d == y) for d, y in zip(dec, task.labels, strict=True)])
            agree_norm.append([int(d == r) for d, r in zip(dec_norm, refs_norm, strict=True)])
            fwd.append([sum(nrows[a:b]) for a, b in task.spans])
        per_item = lambda m: [sum(col) / len(col) for col in zip(*m, strict=True)]  # noqa: E731
        rows.append({
            "setting": st.name, "estimator": st.estimator.as_dict(), "mc_num": st.mc_num,
            "batch_size": st.batch_size, "seeds": len(agree),
            "agree": per_item(agree), "acc": per_item(correct), "agree_norm": per_item(agree_norm),
            "forwards": per_item(fwd), "base_forwards": base, "resolved": resolved,
        })  # fmt: skip
    return rows


def variance_ratio(task: Task, out: dict) -> dict:
    """Var over seeds of ll(leader) − ll(runner-up) (by the reference) at mc_num 32: CRN against
    independent draws, averaged over items, and their ratio."""
    var = {}
    for name in ("independent 32", "crn 32"):
        per_item = []
        runs = out["runs"][name]
        for a, b in task.spans:
            order = sorted(range(a, b), key=lambda i: -out["ref"][i])
            lead, second = order[0], order[1]
            d = [ll[lead] - ll[second] for ll, _ in runs]
            m = sum(d) / len(d)
            per_item.append(sum((x - m) ** 2 for x in d) / (len(d) - 1))
        var[name] = per_item
    return var


def pooled(rows: list[dict], key: str, mask: str | None = None) -> tuple[float, float, int]:
    """Mean of the per-item rates over `rows`' items (optionally the resolved ones) and its
    standard error over items."""
    xs = [
        x
        for r in rows
        for x, keep in zip(r[key], r["resolved"] if mask else [True] * len(r[key]), strict=True)
        if keep
    ]
    if not xs:
        return float("nan"), float("nan"), 0
    m = sum(xs) / len(xs)
    se = math.sqrt(sum((x - m) ** 2 for x in xs) / max(1, len(xs) - 1) / len(xs))
    return m, se, len(xs)


def paired_diff(rows: list[dict], base: list[dict], key: str, mask: bool) -> tuple[float, float]:
    """Mean and SE over items of (setting − standard) per-item rates."""
    d = [
        x - y
        for r, b in zip(rows, base, strict=True)
        for x, y, keep in zip(r[key], b[key], r["resolved"], strict=True)
        if keep or not mask
    ]
    m = sum(d) / len(d)
    return m, math.sqrt(sum((x - m) ** 2 for x in d) / max(1, len(d) - 1) / len(d))


def ratio(rows: list[dict]) -> float:
    return sum(sum(r["forwards"]) for r in rows) / sum(sum(r["base_forwards"]) for r in rows)


def run(quick: bool = False) -> dict:
    plan = QUICK if quick else FULL
    setup = plan.build()
    from sinkprune.evaluation.lm import SinkpruneDLM

    start = time.perf_counter()
    by: dict[tuple[str, str, str], dict] = {}  # (setting, model, task) -> summary row
    variances = defaultdict(lambda: defaultdict(list))
    cost = {}
    share = [0, 0]  # FAST: rows of its Monte-Carlo choices, and their count × cap
    for model, adapter in setup.adapters.items():
        lm = SinkpruneDLM(adapter=adapter, tokenizer=setup.tokenizer)
        for name, items in setup.items.items():
            task = task_requests(items, lm.encode_pair)
            t0 = time.perf_counter()
            out = run_model(adapter, task, plan)
            cost[f"{model}/{name}"] = {"rows_computed": out["computed"], "rows_asked": out["asked"],
                                       "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
            log.info("%s %s: %s", model, name, cost[f"{model}/{name}"])
            for row in summarise(task, out, plan.settings()):
                by[(row["setting"], model, name)] = row
            for k, v in variance_ratio(task, out).items():
                variances[name][k] += v
            mc = [not FAST.estimator.exact_for(len(r.continuation)) for r in task.requests]
            for _, rows in out["runs"][FAST.name]:
                share[0] += sum(n for n, m in zip(rows, mc, strict=True) if m)
                share[1] += sum(mc) * FAST.estimator.max_rows(FAST.mc_num)
    info = setup.info | {"cost": cost, "fast_share_of_cap": share[0] / max(1, share[1])}
    models, tasks = list(setup.adapters), list(setup.items)
    return report(by, variances, models, tasks, info, start, plan)


def report(by, variances, models, tasks, info, start, plan: Plan) -> dict:
    table = []
    std_rows = [by[(STANDARD.name, m, t)] for m in models for t in tasks]
    for st in plan.settings():
        rows = [by[(st.name, m, t)] for m in models for t in tasks]
        all_m, all_se, n_all = pooled(rows, "agree")
        res_m, res_se, n_res = pooled(rows, "agree", mask="resolved")
        d_all, d_all_se = paired_diff(rows, std_rows, "agree", False)
        d_res, d_res_se = paired_diff(rows, std_rows, "agree", True)
        entry = {
            "setting": st.name, "estimator": st.estimator.as_dict(), "mc_num": st.mc_num,
            "forwards_ratio": ratio(rows),
            "agree": all_m, "agree_se": all_se, "items": n_all,
            "agree_resolved": res_m, "agree_resolved_se": res_se, "items_resolved": n_res,
            "diff_vs_standard": d_all, "diff_vs_standard_se": d_all_se,
            "diff_resolved_vs_standard": d_res, "diff_resolved_vs_standard_se": d_res_se,
            "acc": pooled(rows, "acc")[0], "agree_norm": pooled(rows, "agree_norm")[0],
            "per_task": {},
        }  # fmt: skip
        for t in tasks:
            trows = [by[(st.name, m, t)] for m in models]
            entry["per_task"][t] = {
                "forwards_ratio": ratio(trows),
                "agree": pooled(trows, "agree")[0],
                "agree_resolved": pooled(trows, "agree", "resolved")[0],
                "agree_norm": pooled(trows, "agree_norm")[0],
                "acc": pooled(trows, "acc")[0],
            }
        entry["per_model"] = {
            m: {
                "forwards_ratio": ratio([by[(st.name, m, t)] for t in tasks]),
                "agree": pooled([by[(st.name, m, t)] for t in tasks], "agree")[0],
            }
            for m in models
        }
        table.append(entry)
    std = table[0]
    ok = [
        e
        for e in table[1:]
        if e["agree"] >= std["agree"] and e["agree_resolved"] >= std["agree_resolved"]
    ]
    best = min(ok, key=lambda e: e["forwards_ratio"]) if ok else None
    var = {}
    for t, v in list(variances.items()) + [("pooled", None)]:
        if v is None:
            ind = sum(sum(x["independent 32"]) for x in variances.values())
            crn = sum(sum(x["crn 32"]) for x in variances.values())
        else:
            ind, crn = sum(v["independent 32"]), sum(v["crn 32"])
        var[t] = crn / ind if ind > 0 else float("nan")
    if best:
        headline = (
            f"cheapest setting at least as reliable as the standard protocol: {best['setting']} "
            f"at {best['forwards_ratio']:.3f} of its forwards (goal <= 0.10); agreement "
            f"{best['agree']:.3f} vs {std['agree']:.3f} (resolved {best['agree_resolved']:.3f} vs "
            f"{std['agree_resolved']:.3f}); CRN/independent variance of the leader − runner-up "
            f"difference at mc_num {VARIANCE_MC}: {var['pooled']:.2f}"
        )
    else:
        headline = "no setting reached the standard protocol's agreement"
    shapes = {
        "models": models, "tasks": tasks, "reference": f"exact if 2^len-1 <= {REF_EXACT}, else "
        f"{len(plan.ref_seeds)}x{BASE_ROWS} independent rows (leave-one-out for the standard runs)",
        "seeds": {"standard protocol": len(plan.ref_seeds), "other settings": len(plan.seeds)},
        "resolved": f"reference leader >= {RESOLVED_Z} standard errors ahead of every choice",
        "quick": plan == QUICK, "threads": torch.get_num_threads(), **info,
    }  # fmt: skip
    return {
        "name": "agreement",
        "title": "Log-likelihood estimator: decision agreement per forward (issue #19)",
        "shapes": shapes,
        "rows": table,
        "variance_ratio_crn_vs_independent": var,
        "chosen": best["setting"] if best else None,
        "headline": headline,
        "markdown": markdown(table, var, best, tasks, shapes) + f"\n**{headline}**\n",
        "seconds_measuring": round(time.perf_counter() - start, 1),
    }


def markdown(table, var, best, tasks, shapes) -> str:
    lines = [
        "## Log-likelihood estimator: decision agreement per forward (issue #19)",
        "",
        f"Models: {shapes['models']} ({shapes['model_description']}); tasks {tasks}; reference: "
        f"{shapes['reference']}. Agreement = share of items whose argmax decision equals the "
        f"reference's (mean over seeds, ± SE over items); resolved: {shapes['resolved']}. "
        "Forwards are counted rows per item relative to 128 independent rows per choice. "
        "Δ = paired difference to the standard protocol.",
        "",
        "| setting | forwards | agree (all) | Δ all | agree (resolved) | Δ resolved | acc "
        "| acc_norm agree |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in table:
        lines.append(
            f"| {e['setting']} | {e['forwards_ratio']:.3f} | {e['agree']:.3f} ± "
            f"{e['agree_se']:.3f} | {e['diff_vs_standard']:+.3f} ± {e['diff_vs_standard_se']:.3f}"
            f" | {e['agree_resolved']:.3f} ± {e['agree_resolved_se']:.3f} | "
            f"{e['diff_resolved_vs_standard']:+.3f} ± {e['diff_resolved_vs_standard_se']:.3f} | "
            f"{e['acc']:.3f} | {e['agree_norm']:.3f} |"
        )
    lines += ["", "Per task (both models pooled):", "",
              "| task | setting | forwards | agree (all) | agree (resolved) | acc_norm agree |",
              "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for e in [table[0]] + ([best] if best else []):
        for t in tasks:
            p = e["per_task"][t]
            lines.append(
                f"| {t} | {e['setting']} | {p['forwards_ratio']:.3f} | {p['agree']:.3f} | "
                f"{p['agree_resolved']:.3f} | {p['agree_norm']:.3f} |"
            )
    lines += ["", "Variance of ll(leader) − ll(runner-up) at mc_num 32, CRN / independent: "
              + ", ".join(f"{t} {v:.2f}" for t, v in var.items()), ""]  # fmt: skip
    return "\n".join(lines)
