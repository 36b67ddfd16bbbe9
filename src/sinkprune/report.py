"""Paper tables and figures from the evaluation results on disk (rules `tables`, `figures`).

Pure functions of the files they are given: `results/{model}/eval/{variant}/{task}.json` (lm-eval results JSON, the
score is `results[task][metric]` with the metric of `evaluation.tasks.<task>.metric`, ",none"
appended when it names no filter), `results/{model}/eval/{variant}/heldout.json` (masked-token CE
per t, sinkprune.evaluation.heldout) and the published numbers (`resources/paper_results.csv`).
Nothing is loaded from a model and no value is ever filled in: a missing result is shown as "—"
(empty in CSV).

Per model and pruning kind (unstructured, N:M, structured) a table in Markdown, CSV and LaTeX
(booktabs): rows dense, then one block per sparsity with one row per method; columns the tasks
(percent, 2 decimals), their mean (Avg, only when every task is present) and, for sink-aware rows,
Avg minus the baseline's Avg in the same block (Δ Avg). The best value of each column in a block is
bold. Where the paper publishes numbers for the model (`models.<m>.paper_name`), a second table
puts ours beside the published ones. A held-out table lists CE per t and ELBO bits per token.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from sinkprune.config import Variant, variants

log = logging.getLogger(__name__)

MISSING = "—"
#: sink-aware method -> the baseline it modifies (method.md §5)
BASELINE_OF = {"sink": "wanda", "sink_sgpt": "sparsegpt", "sink_sp": "wanda_sp"}
METHOD_ORDER = [
    "dense",
    "magnitude",
    "wanda",
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
    "sink": "Sink-aware Wanda",
    "sparsegpt": "SparseGPT",
    "sink_sgpt": "Sink-aware SparseGPT",
    "wanda_sp": "Wanda-sp",
    "sink_sp": "Sink-aware Wanda-sp",
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


class ReportError(ValueError):
    """A result file does not hold what the config says; the message names the file and key."""


# ------------------------------------------------------------------- reading ---
def metric_key(metric: str) -> str:
    """lm-eval's key of a metric: 'acc' -> 'acc,none'; 'exact_match,strict-match' unchanged."""
    return metric if "," in metric else f"{metric},none"


def read_task_score(path: str | Path, task: str, metric: str) -> float | None:
    """Score of `task` in the lm-eval JSON at `path`, in percent; None if the file is missing."""
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
    return 100.0 * float(results[task][key])


def read_heldout(path: str | Path) -> dict[str, float] | None:
    """{'ce_t0.15': nats, ..., 'bits_per_token': bits} from a heldout.json; None if missing.

    Reads the keys written by sinkprune.evaluation.heldout: `masked` (list of {t, ce_nats, ...})
    for a diffusion LM, `next_token` ({ce_nats, ...}) for a causal one, and `bits_per_token`.
    """
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    out: dict[str, float] = {}
    for row in data.get("masked") or []:
        out[f"ce_t{float(row['t']):g}"] = float(row["ce_nats"])
    if data.get("next_token"):
        out["ce_next_token"] = float(data["next_token"]["ce_nats"])
    if data.get("bits_per_token") is not None:
        out["bits_per_token"] = float(data["bits_per_token"])
    if not out:
        raise ReportError(f"{path}: none of the keys masked, next_token, bits_per_token")
    return out


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


def collect_scores(
    files: EvalIndex, model: str, vs: Sequence[Variant], tasks: Mapping[str, Mapping]
) -> pd.DataFrame:
    """Long table (sparsity_type, sparsity, method, task, value) of every variant × task; value is
    NaN where the result file is missing."""
    rows = []
    for v in vs:
        for task, tcfg in tasks.items():
            path = eval_path(files, model, v.name, f"{task}.json")
            value = read_task_score(path, task, tcfg.get("metric", "acc"))
            rows.append({**_key(v), "task": task, "value": math.nan if value is None else value})
    return pd.DataFrame(rows, columns=[*KEY_COLS, "task", "value"])


def _key(v: Variant) -> dict:
    return {"sparsity_type": v.sparsity_type, "sparsity": float(v.sparsity), "method": v.method}


# ------------------------------------------------------------------- tables ---
def ordered_variants(vs: Sequence[Variant], types: Sequence[str]) -> list[Variant]:
    """dense, then the variants of `types` by (type, sparsity), methods in METHOD_ORDER."""
    picked = [v for v in vs if v.sparsity_type in types]
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    picked.sort(key=lambda v: (types.index(v.sparsity_type), v.sparsity, rank.get(v.method, 99)))
    return [v for v in vs if v.method == "dense"] + picked


def pruning_table(
    scores: pd.DataFrame, vs: Sequence[Variant], tasks: Sequence[str]
) -> pd.DataFrame:
    """Wide table: one row per variant of `vs` (in order), columns tasks, avg, delta_avg."""
    wide = scores.pivot_table(index=KEY_COLS, columns="task", values="value", dropna=False)
    rows = []
    for v in vs:
        k = (v.sparsity_type, float(v.sparsity), v.method)
        vals = {t: _lookup(wide, k, t) for t in tasks}
        avg = sum(vals.values()) / len(vals) if vals else math.nan  # NaN if any task is missing
        rows.append({**_key(v), **vals, "avg": avg})
    df = pd.DataFrame(rows, columns=[*KEY_COLS, *tasks, "avg"])
    df["delta_avg"] = [_delta(df, i, "avg") for i in range(len(df))]
    return df


def _lookup(wide: pd.DataFrame, key: tuple, task: str) -> float:
    try:
        return float(wide.loc[key, task])
    except KeyError:
        return math.nan


def _delta(df: pd.DataFrame, i: int, col: str) -> float:
    """df[col] of row i minus that of its baseline in the same block; NaN if not sink-aware."""
    row = df.iloc[i]
    base = BASELINE_OF.get(row["method"])
    if base is None:
        return math.nan
    match = df[
        (df["method"] == base)
        & (df["sparsity_type"] == row["sparsity_type"])
        & (df["sparsity"] == row["sparsity"])
    ]
    if match.empty:
        return math.nan
    return float(row[col]) - float(match.iloc[0][col])


def delta_table(table: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """Sink-aware rows only: each of `cols` minus the baseline's value in the same block."""
    rows = []
    for i in range(len(table)):
        row = table.iloc[i]
        base = BASELINE_OF.get(row["method"])
        if base is not None and (table["method"] == base).any():  # baseline in the grid
            rows.append(
                {
                    **{k: row[k] for k in KEY_COLS},
                    "baseline": BASELINE_OF[row["method"]],
                    **{c: _delta(table, i, c) for c in cols},
                }
            )
    return pd.DataFrame(rows, columns=[*KEY_COLS, "baseline", *cols])


def paper_table(
    published: pd.DataFrame, paper_name: str, kind: str, table: pd.DataFrame, tasks: Sequence[str]
) -> pd.DataFrame:
    """Long table of every published number of (paper_name, kind) beside ours, joined on
    (method, sparsity, task); ours is NaN where we have no result, diff = ours − paper."""
    types = KINDS[kind][0]
    pub = published[(published["model"] == paper_name) & (published["pruning"].isin(types))]
    rows = []
    for rec in pub.itertuples(index=False):
        stype = "dense" if rec.method == "dense" else rec.pruning
        match = table[
            (table["method"] == rec.method)
            & (table["sparsity_type"] == stype)
            & ((table["sparsity"] - float(rec.sparsity)).abs() < 1e-9)
        ]
        ours = math.nan
        if not match.empty:
            r = match.iloc[0]
            if rec.benchmark == "avg8":
                vals = [r[t] for t in AVG8_TASKS if t in tasks]
                ours = sum(vals) / 8 if len(vals) == 8 else math.nan
            elif rec.benchmark in tasks:
                ours = float(r[rec.benchmark])
        paper = float(rec.value)
        rows.append(
            {
                "sparsity_type": stype,
                "sparsity": float(rec.sparsity),
                "method": rec.method,
                "task": rec.benchmark,
                "ours": ours,
                "paper": paper,
                "diff": ours - paper,
            }
        )
    return pd.DataFrame(rows, columns=[*KEY_COLS, "task", "ours", "paper", "diff"])


def heldout_table(files: EvalIndex, model: str, vs: Sequence[Variant]) -> pd.DataFrame:
    """One row per variant: CE per t (nats) and bits per token from heldout.json; NaN if missing."""
    rows, cols = [], []
    for v in vs:
        vals = read_heldout(eval_path(files, model, v.name, "heldout.json")) or {}
        cols += [c for c in vals if c not in cols]
        rows.append({**_key(v), **vals})
    cols.sort(key=lambda c: c == "bits_per_token")  # stable: t_grid order, bits last
    return pd.DataFrame(rows, columns=[*KEY_COLS, *cols])


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
        "ours": "Ours",
        "paper": "Paper",
        "diff": "Δ",
        "task": "Task",
        "baseline": "Baseline",
    }.get(col, col)


def _fmt(x, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return MISSING
    if isinstance(x, str):
        return TASK_LABELS.get(x, METHOD_LABELS.get(x, x))
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def _best_mask(
    df: pd.DataFrame, cols: Sequence[str], lower_is_better: bool
) -> set[tuple[int, str]]:
    """(row, col) of the best value of each column within each block of (type, sparsity)."""
    best = set()
    blocks = df.groupby(["sparsity_type", "sparsity"], sort=False).groups
    for idx in blocks.values():
        if len(idx) < 2:
            continue
        for c in cols:
            vals = df.loc[idx, c].astype(float).round(2)  # compare what is shown
            if vals.notna().sum() < 2:
                continue
            target = vals.min() if lower_is_better else vals.max()
            best |= {(i, c) for i in idx if vals[i] == target}
    return best


def _cells(
    df: pd.DataFrame, value_cols: Sequence[str], bold_cols: Sequence[str], lower_is_better: bool
) -> tuple[list[str], list[list[tuple[str, bool]]], list[int]]:
    """Header, rows of (text, bold) and the row indices that start a new block."""
    extra = [c for c in df.columns if c not in KEY_COLS and c not in value_cols]
    header = ["Sparsity", "Method"] + [column_label(c) for c in extra + list(value_cols)]
    best = _best_mask(df, bold_cols, lower_is_better)
    rows, starts, prev = [], [], None
    for i in range(len(df)):
        r = df.iloc[i]
        block = (r["sparsity_type"], r["sparsity"])
        if block != prev:
            starts.append(i)
            prev = block
        cells = [(setting_label(r["sparsity_type"], float(r["sparsity"])), False)]
        cells.append((METHOD_LABELS.get(r["method"], r["method"]), False))
        cells += [(_fmt(r[c]), False) for c in extra]
        for c in value_cols:
            signed = c in {"delta_avg", "diff"} or c.startswith("delta")
            text = _fmt(r[c], signed=signed)
            if c == "delta_avg" and r["method"] not in BASELINE_OF:
                text = ""
            cells.append((text, (df.index[i], c) in best))
        rows.append(cells)
    return header, rows, starts


def to_markdown(
    df: pd.DataFrame,
    title: str,
    value_cols: Sequence[str],
    bold_cols: Sequence[str] = (),
    lower_is_better: bool = False,
) -> str:
    """GitHub Markdown table with a `### title` line; best per block in bold, missing as —."""
    header, rows, _ = _cells(df, value_cols, bold_cols, lower_is_better)
    n_left = len(header) - len(value_cols)
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join([":---"] * n_left + ["---:"] * len(value_cols)) + "|")
    for cells in rows:
        texts = [f"**{t}**" if b and t not in ("", MISSING) else t for t, b in cells]
        lines.append("| " + " | ".join(texts) + " |")
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
    """Escape LaTeX's special characters; — becomes --, Δ becomes $\\Delta$."""
    out = "".join(LATEX_ESCAPES.get(ch, ch) for ch in str(text))
    return out.replace(MISSING, "--").replace("Δ", r"$\Delta$")


def to_latex(
    df: pd.DataFrame,
    title: str,
    value_cols: Sequence[str],
    bold_cols: Sequence[str] = (),
    lower_is_better: bool = False,
    label: str = "",
) -> str:
    """A booktabs `table` environment; \\midrule between sparsity blocks, best per block bold."""
    header, rows, starts = _cells(df, value_cols, bold_cols, lower_is_better)
    n_left = len(header) - len(value_cols)
    spec = "l" * n_left + "r" * len(value_cols)
    lines = [
        "% generated by sinkprune.report; requires \\usepackage{booktabs}",
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{latex_escape(title)}}}",
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
        texts = [
            f"\\textbf{{{latex_escape(t)}}}" if b and t not in ("", MISSING) else latex_escape(t)
            for t, b in cells
        ]
        lines.append(" & ".join(texts) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(
    df: pd.DataFrame,
    stem: Path,
    title: str,
    value_cols: Sequence[str],
    bold_cols: Sequence[str] = (),
    lower_is_better: bool = False,
) -> list[Path]:
    """Write `stem`.md, .csv (numbers with 2 decimals, missing empty) and .tex."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.parent / f"{stem.name}{s}" for s in (".md", ".csv", ".tex")]
    paths[0].write_text(to_markdown(df, title, value_cols, bold_cols, lower_is_better))
    df.to_csv(paths[1], index=False, float_format="%.2f", na_rep="")
    label = f"tab:{stem.parent.name}:{stem.name}"
    paths[2].write_text(to_latex(df, title, value_cols, bold_cols, lower_is_better, label))
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
) -> list[Path]:
    """All tables of every model of `evaluation.models` into `out_dir`; returns the files.
    `eval_files`: the result files (task JSONs, heldout.json), as paths or an index."""
    files = eval_files if isinstance(eval_files, Mapping) else index_eval_files(eval_files)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = dict(evaluation["tasks"])
    published = _read_published(published_csv)
    written: list[Path] = []
    for model in evaluation.get("models", []):
        vs = variants({"pruning": pruning}, model)
        scores = collect_scores(files, model, vs, tasks)
        settings = settings_line(model, models[model], calibration or {}, diffusion or {})
        paper_name = models[model].get("paper_name")
        for kind, (types, title) in KINDS.items():
            kvs = ordered_variants(vs, types)
            if len(kvs) < 2:  # no pruned variant of this kind in the grid
                continue
            table = pruning_table(scores, kvs, list(tasks))
            value_cols = [*tasks, "avg", "delta_avg"]
            written += write_table(
                table,
                out_dir / model / kind,
                f"{title}: {settings}",
                value_cols,
                bold_cols=[*tasks, "avg"],
            )
            deltas = delta_table(table, [*tasks, "avg"])
            if not deltas.empty:
                written += write_table(
                    deltas,
                    out_dir / model / f"{kind}_delta",
                    f"{title}, sink-aware minus baseline: {settings}",
                    [*tasks, "avg"],
                )
            if paper_name and published is not None:
                ptable = paper_table(published, paper_name, kind, table, list(tasks))
                if not ptable.empty:
                    written += write_table(
                        ptable,
                        out_dir / model / f"{kind}_vs_paper",
                        f"{title}, ours vs published ({paper_name}): {settings}",
                        ["ours", "paper", "diff"],
                    )
        held = heldout_table(files, model, ordered_variants(vs, _all_types()))
        cols = [c for c in held.columns if c not in KEY_COLS]
        if cols:
            written += write_table(
                held,
                out_dir / model / "heldout",
                f"Held-out masked-token CE (nats) and ELBO bits per token: {settings}",
                cols,
                bold_cols=cols,
                lower_is_better=True,
            )
    return written


def _all_types() -> tuple[str, ...]:
    return tuple(t for types, _ in KINDS.values() for t in types)


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
    """Per model: score (and held-out CE) vs sparsity, one panel per task, sink-aware solid vs
    baseline dashed; and bars of sink-aware − baseline per task. PNG + PDF into `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    files = eval_files if isinstance(eval_files, Mapping) else index_eval_files(eval_files)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = dict(evaluation["tasks"])
    written: list[Path] = []
    for model in evaluation.get("models", []):
        vs = variants({"pruning": pruning}, model)
        scores = collect_scores(files, model, vs, tasks)
        settings = settings_line(model, models[model], calibration or {}, diffusion or {})
        all_vs = ordered_variants(vs, _all_types())
        table = pruning_table(scores, all_vs, list(tasks))
        held = heldout_table(files, model, all_vs)
        for stype in ("unstructured", "structured"):
            if not any(v.sparsity_type == stype for v in vs):
                continue
            fig = _curves(table, [*tasks, "avg"], stype, f"{model}: score vs {stype} sparsity")
            written += _save(fig, out_dir / model / f"accuracy_vs_{stype}", settings)
            ce_cols = [c for c in held.columns if c not in KEY_COLS]
            if ce_cols:
                fig = _curves(held, ce_cols, stype, f"{model}: held-out CE vs {stype} sparsity")
                written += _save(fig, out_dir / model / f"heldout_vs_{stype}", settings)
        deltas = delta_table(table, [*tasks, "avg"])
        if not deltas.empty:
            fig = _delta_bars(deltas, [*tasks, "avg"], f"{model}: sink-aware − baseline")
            written += _save(fig, out_dir / model / "deltas", settings)
    return written


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
            y = [float(dense[col].iloc[0]) if len(dense) else math.nan, *rows[col].tolist()]
            style = "-" if m in BASELINE_OF else "--"  # sink-aware solid, baseline dashed
            ax.plot(x, y, style, marker="o", ms=3, color=colors[pairs[m]], label=METHOD_LABELS[m])
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
    fig.suptitle(title, fontsize=10)
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
            label = setting_label(r["sparsity_type"], r["sparsity"])
            ax.bar(xs, ys, width, label=label)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(range(len(cols)), [column_label(c) for c in cols], fontsize=7, rotation=30)
        ax.set_ylabel("Δ points", fontsize=8)
        ax.set_title(f"{METHOD_LABELS[m]} − {METHOD_LABELS[BASELINE_OF[m]]}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _save(fig, stem: Path, settings: str) -> list[Path]:
    import matplotlib.pyplot as plt

    fig.text(0.01, 0.005, settings, fontsize=6, color="0.4")
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.parent / f"{stem.name}{s}" for s in (".png", ".pdf")]
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return paths


# ---------------------------------------------------------------------- CLI ---
def main(argv: list[str] | None = None) -> None:
    """`python -m sinkprune.report CONFIG [--results DIR]`: tables and figures from whatever
    results exist (missing ones shown as missing), without Snakemake."""
    import argparse

    import yaml

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("config")
    p.add_argument("--results", default="results")
    p.add_argument("--published", default="resources/paper_results.csv")
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
    tables = build_tables(files, res / "tables" / "pruning", published_csv=a.published, **common)
    figures = build_figures(files, res / "figures" / "pruning", **common)
    print(f"{len(tables)} table files, {len(figures)} figure files")


if __name__ == "__main__":
    main()
