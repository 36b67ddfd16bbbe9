"""Paper tables, figures and the claims summary from the evaluation results (rules `tables`,
`figures`).

Pure functions of the files they are given: `results/{model}/eval/{variant}/{task}.json` (lm-eval
results JSON: the score is `results[task][metric]` with the metric of
`evaluation.tasks.<task>.metric`, ",none" appended when it names no filter; its stderr; the
per-item values `items`, sinkprune.evaluation.run), `results/{model}/eval/{variant}/heldout.json`
(masked-token CE per t and ELBO bits per token, with per-window values,
sinkprune.evaluation.heldout), `results/{model}/eval/{variant}/ppl.json` (the release's perplexity
with per-chunk log-PPLs, sinkprune.evaluation.ppl) and the published numbers
(`resources/paper_results.csv`). Nothing
is loaded from a model and no value is ever filled in: a missing result is shown as "—" (empty in
CSV).

Per model and pruning kind (unstructured, N:M, structured) a table in Markdown, CSV and LaTeX
(booktabs): rows dense, then one block per sparsity with one row per method; columns the tasks
(percent ± stderr), their mean (Avg, only when every task is present), for sink-aware rows Avg
minus the baseline's Avg in the same block (Δ Avg, with its paired 95% CI in the CSV and a mark
when the CI excludes 0), the held-out CE per t and ELBO bits per token (± stderr over windows)
and the release's perplexity PPL (± stderr over chunks, delta method). Differences of PPL are
taken on its log (Δ log PPL = log of the PPL ratio, paired over the same chunks). The best value of each column in a block is bold. `{kind}_delta` gives every
sink-aware − baseline difference with its paired CI (sinkprune.statistics: bootstrap over the
same items or windows). Where the paper publishes numbers for the model
(`models.<m>.paper_name`), a third table puts ours beside them. `claims.md` states, for each
comparison the results can test, whether the paper's claim is reproduced.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sinkprune.config import BASELINE_OF, Variant, variants
from sinkprune.statistics import LEVEL, SIGNIFICANT_MARK, PairedDelta, paired_delta_groups

log = logging.getLogger(__name__)

MISSING = "—"
METHOD_ORDER = [
    "dense",
    "magnitude",
    "wanda",
    "dwanda",
    "sink",
    "sparsegpt",
    "sink_sgpt",
    "wanda_sp",
    "sink_sp",
]
METHOD_LABELS = {
    "dense": "Dense",
    "magnitude": "Magnitude",
    "wanda": "Wanda",
    "dwanda": "DWANDA",
    "sink": "Sink-aware Wanda",
    "sparsegpt": "SparseGPT",
    "sink_sgpt": "Sink-aware SparseGPT",
    "wanda_sp": "Wanda-sp",
    "sink_sp": "Sink-aware Wanda-sp",
}
#: how a variant option reads after the method's label (docs/methods.md)
OPTION_LABELS = {
    "grid": "t grid",
    "unweighted": "ω ≡ 1",
    "rms": "√mean‖X‖²",
    "owl": "OWL",
    "deeper": "deeper sparser",
    "earlier": "earlier sparser",
}
TASK_LABELS = {
    "mmlu": "MMLU",
    "arc_challenge": "ARC-C",
    "arc_easy": "ARC-E",
    "piqa": "PIQA",
    "winogrande": "WinoGrande",
    "gsm8k": "GSM8K",
    "hellaswag": "HellaSwag",
    "gpqa_main_n_shot": "GPQA",
    "truthfulqa_mc2": "TruthfulQA",
    "race": "RACE",
    "avg8": "Avg (8)",
    "shakespeare_shuffle": "Shuffle",
    "shakespeare_reverse": "Reverse",
    "shakespeare_swap": "Swap",
    "shakespeare_adjacent_swap": "Adjacent swap",
    "shakespeare_substitute": "Substitute",
    "shakespeare_line_ending": "Line ending",
    "shakespeare_next_line": "Next line",
    "shakespeare_last_word": "Last word",
    "shakespeare_complete_line": "Complete line",
}
#: the published "Avg" is over these 8 benchmarks (method.md §7)
AVG8_TASKS = [
    "mmlu",
    "arc_challenge",
    "piqa",
    "winogrande",
    "gsm8k",
    "hellaswag",
    "gpqa_main_n_shot",
    "race",
]
#: table kind -> (sparsity types it holds, title)
KINDS = {
    "unstructured": (("unstructured",), "Unstructured pruning"),
    "nm": (("2:4", "4:8"), "N:M semi-structured pruning"),
    "structured": (("structured",), "Structured pruning"),
}
KEY_COLS = ["sparsity_type", "sparsity", "method"]
#: companion columns of a value column c: f"{c}{suffix}"
STDERR, LO, HI, SIG = "_stderr", "_lo", "_hi", "_sig"
COMPANIONS = (STDERR, LO, HI, SIG)
NOTE = (
    f"± is the standard error. Δ = sink-aware − baseline at the same sparsity, "
    f"[{LEVEL:.0%} CI] paired over the same items (tasks, percentage points), windows "
    f"(held-out CE, nats; bits per token) or chunks (log PPL) by bootstrap; {SIGNIFICANT_MARK} "
    f"marks a CI that excludes 0. Lower is better for CE, bits and PPL."
)


class ReportError(ValueError):
    """A result file does not hold what the config says; the message names the file and key."""


# ------------------------------------------------------------------- reading ---
def metric_key(metric: str) -> str:
    """lm-eval's key of a metric: 'acc' -> 'acc,none'; 'exact_match,strict-match' unchanged."""
    return metric if "," in metric else f"{metric},none"


@dataclass(frozen=True)
class TaskResult:
    """One task of one variant: score and stderr in percent, per-item values (fractions)."""

    score: float
    stderr: float
    items: dict[str, float]


def read_task_result(path: str | Path, task: str, metric: str) -> TaskResult | None:
    """The task's score, stderr and per-item values in the JSON at `path`; None if missing."""
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    results = data.get("results", {})
    if task not in results:
        raise ReportError(f"{path}: no results[{task!r}] (has {sorted(results)})")
    key = metric_key(metric)
    if key not in results[task]:
        keys = sorted(k for k in results[task] if "stderr" not in k and "," in k)
        raise ReportError(
            f"{path}: no metric {key!r} for task {task!r}; evaluation.tasks.{task}.metric is "
            f"{metric!r}, the file has {keys}"
        )
    items = data.get("items")
    if items is None:
        raise ReportError(
            f"{path}: no per-item results (`items`), needed for paired CIs; the file was "
            "written by an older sinkprune: rerun it (snakemake --forcerun evaluate)"
        )
    if items.get("metric") != key:
        raise ReportError(
            f"{path}: per-item results are for {items.get('metric')!r}, not {key!r} "
            f"(evaluation.tasks.{task}.metric changed since the run: rerun evaluate)"
        )
    stderr = _number(results[task].get(key.replace(",", "_stderr,", 1)))
    values = dict(zip(items["ids"], map(float, items["values"]), strict=True))
    return TaskResult(100.0 * float(results[task][key]), 100.0 * stderr, values)


def read_task_score(path: str | Path, task: str, metric: str) -> float | None:
    """Score of `task` in the lm-eval JSON at `path`, in percent; None if the file is missing."""
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    results = data.get("results", {})
    key = metric_key(metric)
    if task not in results or key not in results[task]:
        raise ReportError(f"{path}: no results[{task!r}][{key!r}]")
    return 100.0 * float(results[task][key])


def _number(x) -> float:
    """lm-eval's stderr as a float; NaN where it has none ('N/A')."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


@dataclass(frozen=True)
class Heldout:
    """Held-out columns of one variant: value, stderr and per-window values (with weights)."""

    values: dict[str, float]
    stderr: dict[str, float] = field(default_factory=dict)
    windows: dict[str, tuple[dict, dict | None]] = field(default_factory=dict)


def read_heldout(path: str | Path) -> Heldout | None:
    """Columns 'ce_t{t}' (nats), 'ce_next_token' (causal models) and 'bits_per_token' of a
    heldout.json; None if missing. Per-window values: CE sums over masked counts (weighted by
    the counts), ELBO nats per window over seqlen·ln 2."""
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    ids = data.get("windows")
    if ids is None:
        raise ReportError(
            f"{path}: no per-window results (`windows`), needed for paired CIs; the file was "
            "written by an older sinkprune: rerun it (snakemake --forcerun evaluate)"
        )
    values, stderr, windows = {}, {}, {}
    for row in data.get("masked") or []:
        col = f"ce_t{float(row['t']):g}"
        values[col], stderr[col] = float(row["ce_nats"]), float(row["ce_nats_stderr"])
        n = dict(zip(ids, row["n_masked_per_window"], strict=True))
        sums = dict(zip(ids, row["ce_sum_per_window"], strict=True))
        windows[col] = ({w: sums[w] / n[w] for w in ids}, n)
    seqlen = int(data["seqlen"])
    if data.get("next_token"):
        nt = data["next_token"]
        values["ce_next_token"] = float(nt["ce_nats"])
        stderr["ce_next_token"] = float(nt["ce_nats_stderr"])
        per = {w: s / (seqlen - 1) for w, s in zip(ids, nt["ce_sum_per_window"], strict=True)}
        windows["ce_next_token"] = (per, None)
        windows["bits_per_token"] = ({w: v / math.log(2) for w, v in per.items()}, None)
        stderr["bits_per_token"] = stderr["ce_next_token"] / math.log(2)
    if data.get("elbo"):
        nats = data["elbo"]["nats_per_window"]
        scored = int(data["elbo"].get("tokens_per_window", seqlen))  # Dream: seqlen − 1
        bits = {w: x / scored / math.log(2) for w, x in zip(ids, nats, strict=True)}
        windows["bits_per_token"] = (bits, None)
        stderr["bits_per_token"] = float(data["elbo"]["bits_per_token_stderr"])
    if data.get("bits_per_token") is not None:
        values["bits_per_token"] = float(data["bits_per_token"])
    if not values:
        raise ReportError(f"{path}: none of the keys masked, next_token, bits_per_token")
    return Heldout(values, stderr, windows)


def read_ppl(path: str | Path) -> Heldout | None:
    """Columns 'ppl' (value, stderr) and 'log_ppl' (value, stderr, per-chunk values keyed by
    the chunk's start) of a ppl.json; None if missing."""
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    try:
        chunks = {
            int(c["start"]): float(c["log_ppl"])
            for c in data["chunks"]
            if not math.isnan(float(c["log_ppl"]))
        }
        values = {"ppl": float(data["ppl"]), "log_ppl": float(data["log_ppl"])}
        stderr = {"ppl": _number(data["ppl_stderr"]), "log_ppl": _number(data["log_ppl_stderr"])}
    except (KeyError, TypeError) as err:
        raise ReportError(f"{path}: not a ppl.json of sinkprune.evaluation.ppl ({err})") from None
    return Heldout(values, stderr, {"log_ppl": (chunks, None)})


def _merge(h: Heldout | None, p: Heldout | None) -> Heldout | None:
    """One variant's held-out and perplexity columns together (either may be missing)."""
    if h is None or p is None:
        return h or p
    return Heldout(h.values | p.values, h.stderr | p.stderr, h.windows | p.windows)


EvalIndex = Mapping[tuple[str, str, str], Path]


def index_eval_files(paths: Sequence[str | Path]) -> dict[tuple[str, str, str], Path]:
    """{(model, variant, file name): path} of result files laid out as
    `.../{model}/eval/{variant}/{name}`; other paths are ignored."""
    out = {}
    for p in map(Path, paths):
        if len(p.parts) >= 4 and p.parts[-3] == "eval":
            out[(p.parts[-4], p.parts[-2], p.name)] = p
    return out


def find_eval_files(results_dir: str | Path) -> dict[tuple[str, str, str], Path]:
    """The index of every result file under `results_dir` (for partial results, without Snakemake)."""
    return index_eval_files(sorted(Path(results_dir).glob("*/eval/*/*.json")))


def eval_path(files: EvalIndex, model: str, variant: str, name: str) -> Path:
    """The indexed file, or a path that does not exist (read as missing)."""
    return files.get((model, variant, name), Path("/nonexistent") / model / variant / name)


@dataclass
class ModelResults:
    """Everything the tables need of one model: per variant name, its task results and held-out
    columns (heldout.json and ppl.json; None where both are missing)."""

    tasks: list[str]
    task: dict[str, dict[str, TaskResult | None]]
    heldout: dict[str, Heldout | None]

    def _cols(self) -> list[str]:
        cols: list[str] = []
        for h in self.heldout.values():
            cols += [c for c in (h.values if h else {}) if c not in cols]
        # stable: CE in t order, then bits, then the perplexity columns
        return sorted(cols, key=lambda c: (c in ("ppl", "log_ppl"), c == "bits_per_token"))

    @property
    def heldout_cols(self) -> list[str]:
        """Columns shown as values: CE per t, bits per token, PPL."""
        return [c for c in self._cols() if c != "log_ppl"]

    @property
    def delta_cols(self) -> list[str]:
        """Columns compared between variants: as heldout_cols, with PPL taken on its log."""
        return [c for c in self._cols() if c != "ppl"]


def load_results(
    files: EvalIndex, model: str, vs: Sequence[Variant], tasks: Mapping[str, Mapping]
) -> ModelResults:
    task = {
        v.name: {
            t: read_task_result(
                eval_path(files, model, v.name, f"{t}.json"), t, tcfg.get("metric", "acc")
            )
            for t, tcfg in tasks.items()
        }
        for v in vs
    }
    held = {
        v.name: _merge(
            read_heldout(eval_path(files, model, v.name, "heldout.json")),
            read_ppl(eval_path(files, model, v.name, "ppl.json")),
        )
        for v in vs
    }
    return ModelResults(list(tasks), task, held)


def _key(v: Variant) -> dict:
    """The key columns of a row; `method` is the variant's label (`sink-owl` for options)."""
    return {"sparsity_type": v.sparsity_type, "sparsity": float(v.sparsity), "method": v.label}


def variant_label(label: str) -> str:
    """'sink-unweighted-rms' -> 'Sink-aware Wanda (ω ≡ 1, √mean‖X‖²)'; plain methods as before."""
    method, *tokens = label.split("-")
    name = METHOD_LABELS.get(method, method)
    if not tokens:
        return name
    return f"{name} ({', '.join(OPTION_LABELS.get(t, t) for t in tokens)})"


# ---------------------------------------------------------------- comparing ---
def compare(res: ModelResults, a: str, b: str, col: str) -> PairedDelta | None:
    """Variant b − variant a on column `col` (a task or 'avg' in points, a held-out column in
    its unit), paired over the same items or windows; None where a result is missing."""
    if col in res.tasks or col == "avg":
        names = res.tasks if col == "avg" else [col]
        ra, rb = res.task[a], res.task[b]
        if any(ra[t] is None or rb[t] is None for t in names):
            return None
        groups = [(ra[t].items, rb[t].items, None) for t in names]
        return paired_delta_groups(groups).scaled(100.0)
    ha, hb = res.heldout[a], res.heldout[b]
    if ha is None or hb is None or col not in ha.windows or col not in hb.windows:
        return None
    (va, wa), (vb, wb) = ha.windows[col], hb.windows[col]
    if wa != wb:
        raise ReportError(
            f"held-out {col}: variants {a} and {b} were scored on different masks "
            "(per-window masked counts differ); rerun both with the same evaluation.heldout"
        )
    if set(va) != set(vb):
        raise ReportError(
            f"{col}: variants {a} and {b} were scored on different windows or chunks; rerun "
            "both with the same evaluation.heldout / evaluation.ppl"
        )
    return paired_delta_groups([(va, vb, wa)])


def baseline_variant(v: Variant, vs: Sequence[Variant]) -> Variant | None:
    """The baseline of a sink-aware variant at the same sparsity, if it is in `vs`. Variants with
    options (ablation rungs, allocations) have their own reports (sink_ladder, allocation)."""
    base = BASELINE_OF.get(v.method)
    if base is None or v.options:
        return None
    want = Variant(base, v.sparsity_type, v.sparsity)
    return want if want in vs else None


def _put(row: dict, col: str, d: PairedDelta | None) -> None:
    row[col] = math.nan if d is None else d.delta
    row[col + LO] = math.nan if d is None else d.lo
    row[col + HI] = math.nan if d is None else d.hi
    row[col + SIG] = None if d is None else d.significant


# ------------------------------------------------------------------- tables ---
def ordered_variants(vs: Sequence[Variant], types: Sequence[str]) -> list[Variant]:
    """dense, then the variants of `types` by (type, sparsity), methods in METHOD_ORDER."""
    picked = [v for v in vs if v.sparsity_type in types]
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    picked.sort(
        key=lambda v: (
            types.index(v.sparsity_type),
            v.sparsity,
            len(v.options),  # the paper's methods first, then options (ablation, allocation)
            rank.get(v.method, 99),
            v.label,
        )
    )
    return [v for v in vs if v.method == "dense"] + picked


def pruning_table(res: ModelResults, vs: Sequence[Variant], heldout: bool = True) -> pd.DataFrame:
    """Wide table, one row per variant of `vs` (in order): per task the score and stderr, Avg
    (NaN if any task is missing) with its stderr, Δ Avg against the baseline with its paired CI,
    then (`heldout`) the held-out columns with their stderr."""
    held_cols = res.heldout_cols if heldout else []
    rows = []
    for v in vs:
        row = _key(v)
        scores = res.task[v.name]
        for t in res.tasks:
            r = scores[t]
            row[t], row[t + STDERR] = (r.score, r.stderr) if r else (math.nan, math.nan)
        present = [scores[t] for t in res.tasks if scores[t] is not None]
        full = bool(present) and len(present) == len(res.tasks)
        row["avg"] = sum(r.score for r in present) / len(present) if full else math.nan
        row["avg" + STDERR] = (
            math.sqrt(sum(r.stderr**2 for r in present)) / len(present) if full else math.nan
        )
        base = baseline_variant(v, vs)
        _put(row, "delta_avg", compare(res, base.name, v.name, "avg") if base else None)
        h = res.heldout[v.name]
        for c in held_cols:
            row[c] = h.values.get(c, math.nan) if h else math.nan
            row[c + STDERR] = h.stderr.get(c, math.nan) if h else math.nan
        rows.append(row)
    cols = [*KEY_COLS]
    for c in res.tasks + ["avg"]:
        cols += [c, c + STDERR]
    cols += ["delta_avg", *(f"delta_avg{s}" for s in (LO, HI, SIG))]
    for c in held_cols:
        cols += [c, c + STDERR]
    return pd.DataFrame(rows, columns=cols)


def delta_table(res: ModelResults, vs: Sequence[Variant], cols: Sequence[str]) -> pd.DataFrame:
    """Sink-aware rows whose baseline is in `vs`: each of `cols` minus the baseline's value,
    with the paired CI (`{col}_lo`, `{col}_hi`) and whether it excludes 0 (`{col}_sig`)."""
    rows = []
    for v in vs:
        base = baseline_variant(v, vs)
        if base is None:
            continue
        row = {**_key(v), "baseline": base.method}
        for c in cols:
            _put(row, c, compare(res, base.name, v.name, c))
        rows.append(row)
    out_cols = [*KEY_COLS, "baseline"]
    for c in cols:
        out_cols += [c, c + LO, c + HI, c + SIG]
    return pd.DataFrame(rows, columns=out_cols)


def official_reference(
    official: pd.DataFrame | None, paper_name: str, task: str, tcfg: Mapping
) -> float:
    """The LLaDA authors' dense number for `task` measured with the config's settings of it
    (resources/llada_official_eval.csv: num_fewshot, cfg, mc_num of a likelihood task; gen_length,
    steps, block_length of a generation task); NaN where they publish none for these settings."""
    if official is None:
        return math.nan
    rows = official[(official["model"] == paper_name) & (official["task"] == task)]
    for r in rows.to_dict("records"):
        if r["eval_type"] == "gen":
            same = all(
                float(r[k]) == float(tcfg.get(k, math.nan))
                for k in ("gen_length", "steps", "block_length")
            )
        else:
            same = (
                float(r["num_fewshot"]) == float(tcfg.get("num_fewshot", 0))
                and float(r["cfg"]) == float(tcfg.get("cfg", 0.0))
                and float(r["mc_num"]) == float(tcfg.get("mc_num", 128))
            )
        if same:
            return float(r["value"])
    return math.nan


def paper_table(
    published: pd.DataFrame,
    paper_name: str,
    kind: str,
    table: pd.DataFrame,
    tasks: Sequence[str],
    official: pd.DataFrame | None = None,
    task_cfgs: Mapping[str, Mapping] | None = None,
) -> pd.DataFrame:
    """Long table of every published number of (paper_name, kind) beside ours, joined on
    (method, sparsity, task); ours is NaN where we have no result, diff = ours − paper. Dense rows
    also carry the LLaDA authors' own number under the config's settings (`llada`, `diff_llada`,
    `official_reference`), with a dense row for every evaluated task they publish and the pruning
    paper does not."""
    types = KINDS[kind][0]
    pub = published[(published["model"] == paper_name) & (published["pruning"].isin(types))]
    task_cfgs = task_cfgs or {}
    rows = []

    def ours_of(method: str, stype: str, sparsity: float, task: str) -> float:
        match = table[
            (table["method"] == method)
            & (table["sparsity_type"] == stype)
            & ((table["sparsity"] - sparsity).abs() < 1e-9)
        ]
        if match.empty:
            return math.nan
        r = match.iloc[0]
        if task == "avg8":
            vals = [r[t] for t in AVG8_TASKS if t in tasks]
            return sum(vals) / 8 if len(vals) == 8 else math.nan
        return float(r[task]) if task in tasks else math.nan

    for rec in pub.itertuples(index=False):
        stype = "dense" if rec.method == "dense" else rec.pruning
        ours = ours_of(rec.method, stype, float(rec.sparsity), rec.benchmark)
        llada = math.nan
        if rec.method == "dense" and rec.benchmark in task_cfgs:
            llada = official_reference(
                official, paper_name, rec.benchmark, task_cfgs[rec.benchmark]
            )
        rows.append(
            {
                "sparsity_type": stype,
                "sparsity": float(rec.sparsity),
                "method": rec.method,
                "task": rec.benchmark,
                "ours": ours,
                "paper": float(rec.value),
                "diff": ours - float(rec.value),
                "llada": llada,
                "diff_llada": ours - llada,
            }
        )
    if kind == "unstructured":  # the dense rows live in the unstructured table
        shown = {r["task"] for r in rows if r["method"] == "dense"}
        for task, tcfg in task_cfgs.items():
            llada = official_reference(official, paper_name, task, tcfg)
            if task in shown or math.isnan(llada):
                continue
            ours = ours_of("dense", "dense", 0.0, task)
            rows.append(
                {
                    "sparsity_type": "dense",
                    "sparsity": 0.0,
                    "method": "dense",
                    "task": task,
                    "ours": ours,
                    "paper": math.nan,
                    "diff": math.nan,
                    "llada": llada,
                    "diff_llada": ours - llada,
                }
            )
    cols = [*KEY_COLS, "task", "ours", "paper", "diff", "llada", "diff_llada"]
    return pd.DataFrame(rows, columns=cols)


def heldout_table(res: ModelResults, vs: Sequence[Variant]) -> pd.DataFrame:
    """One row per variant: held-out columns with stderr (NaN where heldout.json is missing)."""
    rows = []
    for v in vs:
        h = res.heldout[v.name]
        row = _key(v)
        for c in res.heldout_cols:
            row[c] = h.values.get(c, math.nan) if h else math.nan
            row[c + STDERR] = h.stderr.get(c, math.nan) if h else math.nan
        rows.append(row)
    cols = [*KEY_COLS] + [x for c in res.heldout_cols for x in (c, c + STDERR)]
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------- rendering ---
def setting_label(sparsity_type: str, sparsity: float) -> str:
    """How a row's sparsity reads in a table: 'Dense', '50%', '2:4', 'ratio 0.3'."""
    if sparsity_type == "dense":
        return "0%"
    if sparsity_type == "structured":
        return f"ratio {sparsity:g}"
    if sparsity_type == "unstructured":
        return f"{100 * sparsity:g}%"
    return sparsity_type


def lower_is_better(col: str) -> bool:
    """Held-out CE, bits per token and perplexity: lower is better."""
    base = col.removeprefix("delta_")
    return base.startswith("ce_") or base in ("bits_per_token", "ppl", "log_ppl")


def column_label(col: str) -> str:
    if col in TASK_LABELS:
        return TASK_LABELS[col]
    if col == "avg":
        return "Avg"
    if col == "delta_avg":
        return "Δ Avg"
    if col.startswith("ce_t"):
        return f"CE t={col[4:]}"
    return {
        "ce_next_token": "CE next token",
        "bits_per_token": "bits/token",
        "ppl": "PPL",
        "log_ppl": "log PPL",
        "ours": "Ours",
        "paper": "Paper",
        "diff": "Δ",
        "llada": "LLaDA authors",
        "diff_llada": "Δ LLaDA",
        "task": "Task",
        "baseline": "Baseline",
    }.get(col, col)


def _isnan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def decimals(col: str) -> int:
    """Shown decimals: 3 for held-out nats and bits (differences of a few hundredths matter),
    2 for percentages."""
    return 3 if lower_is_better(col.removesuffix(STDERR).removesuffix(LO).removesuffix(HI)) else 2


def write_records_csv(
    records: list[dict], columns: list[str], path: str | Path, digits=decimals
) -> None:
    """Comparison records (value, stderr, delta and its CI per `metric`) as a CSV: numbers shown
    with `digits(metric)` decimals, NaN as an empty cell."""
    df = pd.DataFrame(records, columns=columns)
    for c in ("value", "stderr", "delta", "delta_lo", "delta_hi"):
        df[c] = [
            "" if math.isnan(x) else f"{x:.{digits(m)}f}"
            for x, m in zip(df[c], df["metric"], strict=True)
        ]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)


def _fmt(x, signed: bool = False, digits: int = 2) -> str:
    if _isnan(x):
        return MISSING
    if isinstance(x, str):
        return TASK_LABELS.get(x, variant_label(x))
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _cell(r: pd.Series, c: str, signed: bool) -> tuple[str, bool]:
    """The text of value column `c` of row `r` with its companions (± stderr, [CI], mark) and
    whether a significance mark belongs to it."""
    k = decimals(c)
    text = _fmt(r[c], signed=signed, digits=k)
    if text == MISSING:
        return text, False
    if c + STDERR in r.index and not _isnan(r[c + STDERR]):
        text += f" ± {r[c + STDERR]:.{k}f}"
    if c + LO in r.index and not _isnan(r[c + LO]):
        text += f" [{r[c + LO]:+.{k}f}, {r[c + HI]:+.{k}f}]"
    sig = r[c + SIG] if c + SIG in r.index else None
    return text, not _isnan(sig) and bool(sig)


def _best_mask(df: pd.DataFrame, cols: Sequence[str]) -> set[tuple[int, str]]:
    """(row, col) of the best value of each column within each block of (type, sparsity)."""
    best = set()
    blocks = df.groupby(["sparsity_type", "sparsity"], sort=False).groups
    for idx in blocks.values():
        if len(idx) < 2:
            continue
        for c in cols:
            vals = df.loc[idx, c].astype(float).round(decimals(c))  # compare what is shown
            if vals.notna().sum() < 2:
                continue
            target = vals.min() if lower_is_better(c) else vals.max()
            best |= {(i, c) for i in idx if vals[i] == target}
    return best


def _cells(
    df: pd.DataFrame, value_cols: Sequence[str], bold_cols: Sequence[str], signed_cols: set[str]
) -> tuple[list[str], list[list[tuple[str, bool, bool]]], list[int]]:
    """Header, rows of (text, bold, significant) and the row indices that start a new block."""
    companions = {c + s for c in value_cols for s in COMPANIONS}
    extra = [
        c for c in df.columns if c not in KEY_COLS and c not in value_cols and c not in companions
    ]
    header = ["Sparsity", "Method"] + [column_label(c) for c in extra + list(value_cols)]
    best = _best_mask(df, bold_cols)
    rows, starts, prev = [], [], None
    for i in range(len(df)):
        r = df.iloc[i]
        block = (r["sparsity_type"], r["sparsity"])
        if block != prev:
            starts.append(i)
            prev = block
        cells = [(setting_label(r["sparsity_type"], float(r["sparsity"])), False, False)]
        cells.append((variant_label(r["method"]), False, False))
        cells += [(_fmt(r[c]), False, False) for c in extra]
        for c in value_cols:
            text, sig = _cell(r, c, signed=c in signed_cols)
            if c == "delta_avg" and r["method"] not in BASELINE_OF:
                text, sig = "", False
            cells.append((text, (df.index[i], c) in best, sig))
        rows.append(cells)
    return header, rows, starts


def to_markdown(
    df: pd.DataFrame,
    title: str,
    value_cols: Sequence[str],
    bold_cols: Sequence[str] = (),
    signed_cols: Sequence[str] = (),
    note: str = "",
) -> str:
    """GitHub Markdown table with a `### title` line; best per block in bold, missing as —,
    significance marks after the cell, `note` below the table."""
    header, rows, _ = _cells(df, value_cols, bold_cols, set(signed_cols))
    n_left = len(header) - len(value_cols)
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join([":---"] * n_left + ["---:"] * len(value_cols)) + "|")
    for cells in rows:
        texts = [
            (f"**{t}**" if b and t not in ("", MISSING) else t) + (SIGNIFICANT_MARK if s else "")
            for t, b, s in cells
        ]
        lines.append("| " + " | ".join(texts) + " |")
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters; — becomes --, Δ becomes $\\Delta$, ± $\\pm$."""
    out = "".join(LATEX_ESCAPES.get(ch, ch) for ch in str(text))
    return out.replace(MISSING, "--").replace("Δ", r"$\Delta$").replace("±", r"$\pm$")


def to_latex(
    df: pd.DataFrame,
    title: str,
    value_cols: Sequence[str],
    bold_cols: Sequence[str] = (),
    signed_cols: Sequence[str] = (),
    label: str = "",
    note: str = "",
) -> str:
    """A booktabs `table` environment; \\midrule between sparsity blocks, best per block bold,
    significance as a superscript mark, `note` appended to the caption."""
    header, rows, starts = _cells(df, value_cols, bold_cols, set(signed_cols))
    n_left = len(header) - len(value_cols)
    spec = "l" * n_left + "r" * len(value_cols)
    caption = latex_escape(title + (". " + note if note else ""))
    lines = [
        "% generated by sinkprune.report; requires \\usepackage{booktabs}",
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{caption}}}",
    ]
    if label:
        lines.append(f"\\label{{{re.sub(r'[^A-Za-z0-9:.-]', '-', label)}}}")
    lines += [
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(latex_escape(h) for h in header) + " \\\\",
    ]
    for i, cells in enumerate(rows):
        if i in starts:
            lines.append("\\midrule")
        texts = []
        for t, b, s in cells:
            x = latex_escape(t)
            x = f"\\textbf{{{x}}}" if b and t not in ("", MISSING) else x
            texts.append(x + (f"$^{{{SIGNIFICANT_MARK}}}$" if s else ""))
        lines.append(" & ".join(texts) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(
    df: pd.DataFrame,
    stem: Path,
    title: str,
    value_cols: Sequence[str],
    bold_cols: Sequence[str] = (),
    signed_cols: Sequence[str] = (),
    note: str = "",
) -> list[Path]:
    """Write `stem`.md, .csv (numbers with the shown decimals, missing empty, every companion
    column) and .tex."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.parent / f"{stem.name}{s}" for s in (".md", ".csv", ".tex")]
    paths[0].write_text(to_markdown(df, title, value_cols, bold_cols, signed_cols, note))
    csv = df.copy()
    for c in csv.columns:
        if pd.api.types.is_float_dtype(csv[c]):
            k = decimals(c)
            csv[c] = [("" if math.isnan(x) else f"{x:.{k}f}") for x in csv[c]]
    csv.to_csv(paths[1], index=False)
    label = f"tab:{stem.parent.name}:{stem.name}"
    paths[2].write_text(to_latex(df, title, value_cols, bold_cols, signed_cols, label, note))
    return paths


# ------------------------------------------------------------------ drivers ---
def settings_line(model: str, model_cfg: Mapping, calibration: Mapping, diffusion: Mapping) -> str:
    """One line of settings for titles and captions."""
    src = model_cfg.get("hub_id", "trained here")
    steps, interval = diffusion.get("steps", 50), diffusion.get("sample_interval", 5)
    return (
        f"{model} ({src}); calibration {calibration.get('nsamples')} × "
        f"{calibration.get('seqlen')} tokens, {steps // interval} noise levels"
    )


def build_tables(
    eval_files: Sequence[str | Path] | EvalIndex,
    out_dir: str | Path,
    models: Mapping[str, Mapping],
    evaluation: Mapping,
    pruning: Mapping,
    published_csv: str | Path | None = None,
    calibration: Mapping | None = None,
    diffusion: Mapping | None = None,
    claims_path: str | Path | None = None,
    official_csv: str | Path | None = None,
) -> list[Path]:
    """All tables of every model of `evaluation.models` into `out_dir` (and `claims_path`, the
    claims summary, when given); returns the files. `eval_files`: the result files (task JSONs,
    heldout.json), as paths or an index. `official_csv`: the LLaDA authors' dense numbers
    (resources/llada_official_eval.csv), the second reference of the `_vs_paper` tables."""
    files = eval_files if isinstance(eval_files, Mapping) else index_eval_files(eval_files)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = dict(evaluation["tasks"])
    published = _read_published(published_csv)
    official = _read_official(official_csv)
    written: list[Path] = []
    claims: dict[str, pd.DataFrame] = {}
    for model in evaluation.get("models", []):
        vs = variants({"pruning": pruning}, model)
        res = load_results(files, model, vs, tasks)
        settings = settings_line(model, models[model], calibration or {}, diffusion or {})
        paper_name = models[model].get("paper_name")
        held, held_delta = res.heldout_cols, res.delta_cols
        model_deltas = []
        for kind, (types, title) in KINDS.items():
            kvs = ordered_variants(vs, types)
            if len(kvs) < 2:  # no pruned variant of this kind in the grid
                continue
            table = pruning_table(res, kvs)
            written += write_table(
                table,
                out_dir / model / kind,
                f"{title}: {settings}",
                [*tasks, "avg", "delta_avg", *held],
                bold_cols=[*tasks, "avg", *held],
                signed_cols=["delta_avg"],
                note=NOTE,
            )
            deltas = delta_table(res, kvs, [*tasks, "avg", *held_delta])
            if not deltas.empty:
                model_deltas.append(deltas)
                written += write_table(
                    deltas,
                    out_dir / model / f"{kind}_delta",
                    f"{title}, sink-aware minus baseline: {settings}",
                    [*tasks, "avg", *held_delta],
                    signed_cols=[*tasks, "avg", *held_delta],
                    note=NOTE,
                )
            if paper_name and published is not None:
                ptable = paper_table(
                    published, paper_name, kind, table, list(tasks), official, tasks
                )
                if not ptable.empty:
                    written += write_table(
                        ptable,
                        out_dir / model / f"{kind}_vs_paper",
                        f"{title}, ours vs published ({paper_name}): {settings}",
                        ["ours", "paper", "diff", "llada", "diff_llada"],
                        signed_cols=["diff", "diff_llada"],
                        note=PAPER_NOTE,
                    )
        if held:
            written += write_table(
                heldout_table(res, ordered_variants(vs, _all_types())),
                out_dir / model / "heldout",
                f"Held-out masked-token CE (nats), ELBO bits per token and the release's "
                f"perplexity: {settings}",
                held,
                bold_cols=held,
                note="± is the standard error over windows (PPL: over chunks, delta method); "
                "lower is better.",
            )
        if model_deltas:
            claims[model] = pd.concat(model_deltas, ignore_index=True)
    if claims_path is not None:
        claims_path = Path(claims_path)
        claims_path.parent.mkdir(parents=True, exist_ok=True)
        claims_path.write_text(claims_markdown(claims, list(tasks)))
        written.append(claims_path)
    return written


def _all_types() -> tuple[str, ...]:
    return tuple(t for types, _ in KINDS.values() for t in types)


PAPER_NOTE = (
    "Paper: the pruning paper's release (resources/paper_results.csv). LLaDA authors: their own "
    "lm-eval numbers for the dense model (resources/llada_official_eval.csv), shown only where "
    "they were measured with this config's settings of the task (shots, cfg, mc_num; "
    "gen_length/steps/block_length). Δ = ours − reference, percentage points."
)


def _read_official(path: str | Path | None) -> pd.DataFrame | None:
    """resources/llada_official_eval.csv (columns checked), or None when not given."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: LLaDA reference file not found")
    df = pd.read_csv(path)
    need = {"model", "task", "setting", "num_fewshot", "cfg", "mc_num", "gen_length", "steps",
            "block_length", "value", "eval_type"}  # fmt: skip
    if not need <= set(df.columns):
        raise ReportError(f"{path}: needs columns {sorted(need)}, has {list(df.columns)}")
    return df


def _read_published(path: str | Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: published results file not found")
    df = pd.read_csv(path)
    need = {"model", "pruning", "sparsity", "method", "benchmark", "value"}
    if not need <= set(df.columns):
        raise ReportError(f"{path}: needs columns {sorted(need)}, has {list(df.columns)}")
    return df


# ------------------------------------------------------------------- claims ---
def verdict(delta: float, lo: float, hi: float, higher_is_better: bool) -> str:
    """'reproduced' when the CI excludes 0 on the side the paper claims (sink-aware better),
    'contradicted' when it excludes 0 on the other side, else 'not resolved'."""
    if _isnan(delta):
        return "missing"
    better, worse = (lo > 0, hi < 0) if higher_is_better else (hi < 0, lo > 0)
    return "reproduced" if better else "contradicted" if worse else "not resolved"


def claims_markdown(deltas: Mapping[str, pd.DataFrame], tasks: Sequence[str]) -> str:
    """The claims summary: for every sink-aware variant with its baseline, the paper's claim
    (sink-aware keeps more accuracy and a lower held-out loss at the same sparsity) tested on
    the task average, each task and each held-out column, with the paired CI."""
    lines = [
        "# The paper's claims on these results",
        "",
        "Generated by `sinkprune.report` from the evaluation results. The paper claims that a "
        "sink-aware method keeps more accuracy than its baseline at the same sparsity (Sink-aware "
        "Wanda vs Wanda, Sink-aware SparseGPT vs SparseGPT, Sink-aware Wanda-sp vs Wanda-sp); "
        "here the same comparison is also made on the held-out loss (lower is better). "
        f"Δ = sink-aware − baseline with its paired {LEVEL:.0%} bootstrap CI over the same items "
        "(accuracy, percentage points), windows (held-out CE in nats, bits per token) or chunks "
        "(the release's perplexity, log PPL). A claim "
        "is **reproduced** when the CI excludes 0 on the sink-aware side, **contradicted** when "
        "it excludes 0 on the other side, and **not resolved** when it contains 0.",
    ]
    for model, df in deltas.items():
        cols = [c for c in df.columns if c + SIG in df.columns]
        counts: dict[str, int] = {}
        rows = []
        for r in df.to_dict("records"):
            setting = setting_label(r["sparsity_type"], r["sparsity"])
            if r["sparsity_type"] not in ("unstructured", "structured"):
                setting = f"{r['sparsity_type']} (50%)"
            for c in cols:
                v = verdict(r[c], r[c + LO], r[c + HI], not lower_is_better(c))
                if c in ("avg", *(h for h in cols if lower_is_better(h))):
                    counts[v] = counts.get(v, 0) + 1
                k = decimals(c)
                ci = MISSING if _isnan(r[c]) else f"[{r[c + LO]:+.{k}f}, {r[c + HI]:+.{k}f}]"
                delta = _fmt(r[c], signed=True, digits=k)
                rows.append(
                    f"| {METHOD_LABELS[r['method']]} vs {METHOD_LABELS[r['baseline']]} | "
                    f"{setting} | {_measure(c, tasks)} | {delta} | {ci} | {v} |"
                )
        summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        summary += f" (of {sum(counts.values())})"
        lines += [
            "",
            f"## {model}",
            "",
            f"Accuracy average and held-out columns: {summary}.",
            "",
            "| Comparison | Setting | Measure | Δ | CI | Verdict |",
            "|:---|:---|:---|---:|---:|:---|",
            *rows,
        ]
    if not deltas:
        lines += ["", "No sink-aware variant has its baseline in the pruning grid."]
    return "\n".join(lines) + "\n"


def _measure(col: str, tasks: Sequence[str]) -> str:
    if col == "avg":
        return "accuracy, average over tasks (points)"
    if col in tasks:
        return f"accuracy, {TASK_LABELS.get(col, col)} (points)"
    if col == "bits_per_token":
        return "held-out ELBO bits per token (lower is better)"
    if col == "log_ppl":
        return "the release's perplexity, log PPL (lower is better)"
    return f"held-out {column_label(col)} (nats, lower is better)"


# ------------------------------------------------------------------ figures ---
def build_figures(
    eval_files: Sequence[str | Path] | EvalIndex,
    out_dir: str | Path,
    models: Mapping[str, Mapping],
    evaluation: Mapping,
    pruning: Mapping,
    calibration: Mapping | None = None,
    diffusion: Mapping | None = None,
) -> list[Path]:
    """Per model: score (and held-out CE) vs sparsity with 95% error bars, one panel per task,
    sink-aware solid vs baseline dashed; and bars of sink-aware − baseline per task with their
    paired 95% CIs. PNG + PDF into `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    files = eval_files if isinstance(eval_files, Mapping) else index_eval_files(eval_files)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = dict(evaluation["tasks"])
    written: list[Path] = []
    for model in evaluation.get("models", []):
        vs = variants({"pruning": pruning}, model)
        res = load_results(files, model, vs, tasks)
        settings = settings_line(model, models[model], calibration or {}, diffusion or {})
        all_vs = ordered_variants(vs, _all_types())
        table = pruning_table(res, all_vs)
        held = res.heldout_cols
        for stype in ("unstructured", "structured"):
            if not any(v.sparsity_type == stype for v in vs):
                continue
            fig = _curves(table, [*tasks, "avg"], stype, f"{model}: score vs {stype} sparsity")
            written += _save(fig, out_dir / model / f"accuracy_vs_{stype}", settings)
            if held:
                fig = _curves(table, held, stype, f"{model}: held-out CE vs {stype} sparsity")
                written += _save(fig, out_dir / model / f"heldout_vs_{stype}", settings)
        deltas = delta_table(res, all_vs, [*tasks, "avg"])
        if not deltas.empty:
            fig = _delta_bars(deltas, [*tasks, "avg"], f"{model}: sink-aware − baseline")
            written += _save(fig, out_dir / model / "deltas", settings)
    return written


Z95 = 1.959963985  # Φ⁻¹(0.975): error bars of ±Z95·stderr are 95% intervals


def _curves(table: pd.DataFrame, cols: Sequence[str], stype: str, title: str):
    import matplotlib.pyplot as plt

    n = len(cols)
    ncol = min(4, n)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), squeeze=False)
    dense = table[table["method"] == "dense"]
    sub = table[table["sparsity_type"] == stype]
    methods = [m for m in METHOD_ORDER if m in set(sub["method"])]
    pairs = {m: BASELINE_OF.get(m, m) for m in methods}
    colors = {b: f"C{i}" for i, b in enumerate(dict.fromkeys(pairs.values()))}
    for ax, col in zip(axes.flat, cols, strict=False):
        for m in methods:
            rows = sub[sub["method"] == m].sort_values("sparsity")
            x = [0.0, *rows["sparsity"].tolist()]

            def first(c: str) -> float:
                return float(dense[c].iloc[0]) if len(dense) else math.nan

            y = [first(col), *rows[col].tolist()]
            err = [Z95 * e for e in [first(col + STDERR), *rows[col + STDERR].tolist()]]
            style = "-" if m in BASELINE_OF else "--"  # sink-aware solid, baseline dashed
            ax.errorbar(
                x,
                y,
                yerr=[0 if math.isnan(e) else e for e in err],
                fmt=style,
                marker="o",
                ms=3,
                capsize=2,
                elinewidth=0.8,
                color=colors[pairs[m]],
                label=METHOD_LABELS[m],
            )
        ax.set_title(column_label(col), fontsize=9)
        ax.set_xlabel("ratio" if stype == "structured" else "sparsity", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    ncol = min(4, max(1, len(labels)))
    fig.legend(
        handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.03), ncol=ncol, fontsize=8
    )
    fig.suptitle(f"{title} (error bars: 95% CI)", fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    return fig


def _delta_bars(deltas: pd.DataFrame, cols: Sequence[str], title: str):
    import matplotlib.pyplot as plt

    methods = [m for m in BASELINE_OF if m in set(deltas["method"])]
    fig, axes = plt.subplots(
        len(methods), 1, figsize=(max(6, 0.9 * len(cols)), 2.6 * len(methods)), squeeze=False
    )
    for ax, m in zip(axes[:, 0], methods, strict=True):
        rows = deltas[deltas["method"] == m]
        width = 0.8 / max(1, len(rows))
        for j, (_, r) in enumerate(rows.iterrows()):
            xs = [i + (j - (len(rows) - 1) / 2) * width for i in range(len(cols))]
            ys = [float(r[c]) for c in cols]  # a missing result (NaN) draws no bar
            lo = [
                0 if math.isnan(y) else y - float(r[c + LO]) for c, y in zip(cols, ys, strict=True)
            ]
            hi = [
                0 if math.isnan(y) else float(r[c + HI]) - y for c, y in zip(cols, ys, strict=True)
            ]
            label = setting_label(r["sparsity_type"], r["sparsity"])
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=label, error_kw={"lw": 0.8})
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(range(len(cols)), [column_label(c) for c in cols], fontsize=7, rotation=30)
        ax.set_ylabel("Δ points (95% CI)", fontsize=8)
        ax.set_title(f"{METHOD_LABELS[m]} − {METHOD_LABELS[BASELINE_OF[m]]}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


#: no creation date or other run-dependent metadata: the same results give the same bytes
PDF_METADATA = {"CreationDate": None, "ModDate": None}
PNG_METADATA: dict[str, str] = {}


def _save(fig, stem: Path, settings: str) -> list[Path]:
    import matplotlib.pyplot as plt

    fig.text(0.01, 0.005, settings, fontsize=6, color="0.4")
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.parent / f"{stem.name}{s}" for s in (".png", ".pdf")]
    for p in paths:
        meta = PDF_METADATA if p.suffix == ".pdf" else PNG_METADATA
        fig.savefig(p, dpi=150, metadata=meta)
    plt.close(fig)
    return paths


# ---------------------------------------------------------------------- CLI ---
def main(argv: list[str] | None = None) -> None:
    """`python -m sinkprune.report CONFIG [--results DIR]`: tables, claims and figures from
    whatever results exist (missing ones shown as missing), without Snakemake."""
    import argparse

    import yaml

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("config")
    p.add_argument("--results", default="results")
    p.add_argument("--published", default="resources/paper_results.csv")
    p.add_argument("--official", default="resources/llada_official_eval.csv")
    a = p.parse_args(argv)
    cfg = yaml.safe_load(Path(a.config).read_text())
    common = dict(
        models=cfg["models"],
        evaluation=cfg["evaluation"],
        pruning=cfg.get("pruning", {}),
        calibration=cfg.get("calibration", {}),
        diffusion=cfg.get("diffusion", {}),
    )
    res = Path(a.results)
    files = find_eval_files(res)
    tables = build_tables(
        files,
        res / "tables" / "pruning",
        published_csv=a.published,
        official_csv=a.official,
        claims_path=res / "tables" / "claims.md",
        **common,
    )
    figures = build_figures(files, res / "figures" / "pruning", **common)
    print(f"{len(tables)} table files, {len(figures)} figure files")


if __name__ == "__main__":
    main()
