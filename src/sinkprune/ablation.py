"""The ablation ladders Wanda → sink-aware Wanda and SparseGPT → sink-aware SparseGPT (issue #18,
docs/methods.md#ablation-ladder): what each rung is, and the table of each rung's change against
the rung below with paired 95% CIs (rule `sink_ladder`, `results/tables/ablation/sink_ladder.*`).

Sink-aware Wanda differs from Wanda in four ways: noised inputs, on the fixed t grid of the
calibration stage, from one dense pass, with the summed unsquared norm, and ω-weighted rows. The
ladder changes one at a time (config.WANDA_LADDER); `rung_properties` states each rung's values
and the table names the one that changes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from sinkprune.config import LADDERS, Variant, ladder_variants

log = logging.getLogger(__name__)

#: what a rung's property values mean, in the order the Wanda ladder changes them
PROPERTIES = {
    "inputs": {
        "clean": "the N clean windows",
        "random t": "N·R noised copies, t ~ U[t_min, t_max] per copy",
        "t grid": "the N·S noised x_t of the diffusion grid (the sink stage's inputs)",
    },
    "pass": {
        "sequential": "block i's statistics from the outputs of the pruned blocks < i",
        "one-shot": "every block's statistics from one pass of the unpruned model",
    },
    "statistic": {
        "√mean‖X‖²": "Wanda's sqrt(mean over inputs of ‖X_c‖²)",
        "Σ‖X‖": "sink-aware Wanda's sum over inputs of ‖X_c‖",
        "Hessian": "SparseGPT's H = (2/N) Σ XᵀX",
    },
    "weighting": {"ω ≡ 1": "no row weights", "ω": "rows × ω of their x_t", "ω̄": "rows × ω̄"},
}
STATISTIC = {"rms": "√mean‖X‖²", "summed": "Σ‖X‖"}


def rung_properties(method: str, options: Mapping[str, str]) -> dict[str, str]:
    """The four properties of a ladder rung (method + variant options), values of PROPERTIES."""
    unweighted = options.get("weighting", "sink") == "none"
    if method in {"sparsegpt", "sink_sgpt"}:
        weighting = "ω̄" if method == "sink_sgpt" and not unweighted else "ω ≡ 1"
        return {"inputs": "clean", "pass": "sequential", "statistic": "Hessian",
                "weighting": weighting}  # fmt: skip
    if method == "wanda":
        return {"inputs": "clean", "pass": "sequential", "statistic": "√mean‖X‖²",
                "weighting": "ω ≡ 1"}  # fmt: skip
    if method == "dwanda":
        inputs = "t grid" if options.get("noise", "random") == "grid" else "random t"
        return {"inputs": inputs, "pass": "sequential", "statistic": "√mean‖X‖²",
                "weighting": "ω ≡ 1"}  # fmt: skip
    if method == "sink":
        return {
            "inputs": "t grid",
            "pass": "one-shot",
            "statistic": STATISTIC[options.get("norm", "summed")],
            "weighting": "ω ≡ 1" if unweighted else "ω",
        }
    raise ValueError(f"{method!r} is not a rung of the ablation ladders")


def change(below: Mapping[str, str], above: Mapping[str, str]) -> str:
    """'property: from → to' for each property that differs between two rungs."""
    return "; ".join(
        f"{key}: {below[key]} → {above[key]}" for key in PROPERTIES if below[key] != above[key]
    )


# -------------------------------------------------------------------- table ---
LADDER_TITLES = {
    "wanda": "Wanda → sink-aware Wanda",
    "sparsegpt": "SparseGPT → sink-aware SparseGPT",
}
CSV_COLUMNS = [
    "model",
    "ladder",
    "sparsity_type",
    "sparsity",
    "rung",
    "variant",
    "change",
    "metric",
    "value",
    "stderr",
    "delta",
    "delta_lo",
    "delta_hi",
    "significant",
]


def column_value(res, name: str, col: str) -> tuple[float, float]:
    """(value, stderr) of a variant's column: a task or 'avg' (percent; avg's stderr combines the
    tasks' as independent), or a held-out column (nats, bits). NaN where missing."""
    if col in res.tasks or col == "avg":
        rs = [res.task[name][t] for t in (res.tasks if col == "avg" else [col])]
        if any(r is None for r in rs):
            return math.nan, math.nan
        score = sum(r.score for r in rs) / len(rs)
        return score, math.sqrt(sum(r.stderr**2 for r in rs)) / len(rs)
    h = res.heldout[name]
    if h is None:
        return math.nan, math.nan
    return h.values.get(col, math.nan), h.stderr.get(col, math.nan)


def ladder_records(res, model: str, ladder: str, rungs: Sequence[Variant], cols) -> list[dict]:
    """Long records of one ladder: each rung's value of every column with its paired Δ against
    the rung below (none for rung 1), then `total` records: the top rung against the bottom one."""
    from sinkprune.report import compare

    props = [rung_properties(v.method, v.options) for v in rungs]

    def record(rung: str, v: Variant, variant: str, what: str, col: str, vals, d) -> dict:
        return {
            "model": model,
            "ladder": ladder,
            "sparsity_type": v.sparsity_type,
            "sparsity": float(v.sparsity),
            "rung": rung,
            "variant": variant,
            "change": what,
            "metric": col,
            "value": vals[0],
            "stderr": vals[1],
            "delta": math.nan if d is None else d.delta,
            "delta_lo": math.nan if d is None else d.lo,
            "delta_hi": math.nan if d is None else d.hi,
            "significant": None if d is None else d.significant,
        }

    out = []
    for k, v in enumerate(rungs):
        below = rungs[k - 1] if k else None
        what = change(props[k - 1], props[k]) if k else "baseline"
        for col in cols:
            d = compare(res, below.name, v.name, col) if below else None
            out.append(record(str(k + 1), v, v.name, what, col, column_value(res, v.name, col), d))
    top, bottom = rungs[-1], rungs[0]
    for col in cols:
        d = compare(res, bottom.name, top.name, col)
        name = f"{top.name} vs {bottom.name}"
        out.append(record("total", top, name, "every rung", col, (math.nan, math.nan), d))
    return out


def ladder_markdown(records: Sequence[Mapping], cols: Sequence[str]) -> str:
    """Per (model, ladder, setting): rows = rungs, cells = value ± stderr and, from rung 2 on,
    Δ against the rung below [95% CI] (* when the CI excludes 0); a last row with the total."""
    from sinkprune.config import parse_variant
    from sinkprune.report import column_label, decimals, setting_label, variant_label
    from sinkprune.statistics import LEVEL, SIGNIFICANT_MARK

    lines = [
        "# Ablation ladders: which change carries the gain",
        "",
        "Generated by `sinkprune.ablation` (docs/methods.md#ablation-ladder). Each rung changes one "
        "property of the rung below; Δ = rung − rung below on the same items (accuracy, "
        "percentage points) or held-out windows (CE in nats, bits per token; lower is better), "
        f"with its paired {LEVEL:.0%} bootstrap CI; {SIGNIFICANT_MARK} marks a CI that excludes "
        "0. The last row compares the top rung with the bottom one.",
    ]
    blocks: dict[tuple, dict[str, dict[str, Mapping]]] = {}
    for r in records:
        key = (r["model"], r["ladder"], r["sparsity_type"], r["sparsity"])
        blocks.setdefault(key, {}).setdefault(r["rung"], {})[r["metric"]] = r
    header = ["Rung", "Variant", "Change against the rung below", *map(column_label, cols)]
    for (model, ladder, stype, sparsity), by_rung in blocks.items():
        lines += [
            "",
            f"## {model}: {LADDER_TITLES[ladder]}, {setting_label(stype, sparsity)}",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join([":---"] * 3 + ["---:"] * len(cols)) + "|",
        ]
        for rung, by_col in by_rung.items():
            first = next(iter(by_col.values()))
            name = first["variant"]
            label = name if rung == "total" else variant_label(parse_variant(name).label)
            cells = [rung, label, first["change"]]
            for c in cols:
                cells.append(_cell_text(by_col[c], decimals(c), SIGNIFICANT_MARK))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell_text(r: Mapping, k: int, mark: str) -> str:
    """'value ± stderr; Δ +d [lo, hi]*' (parts missing where NaN); '—' when both are."""
    parts = []
    if not math.isnan(r["value"]):
        parts.append(f"{r['value']:.{k}f} ± {r['stderr']:.{k}f}")
    if not math.isnan(r["delta"]):
        ci = f"[{r['delta_lo']:+.{k}f}, {r['delta_hi']:+.{k}f}]"
        parts.append(f"Δ {r['delta']:+.{k}f} {ci}" + (mark if r["significant"] else ""))
    return "; ".join(parts) or "—"


def build_ladder_table(
    eval_files,
    md_path: str | Path,
    csv_path: str | Path,
    models: Sequence[str],
    ablation: Sequence[Mapping],
    tasks: Mapping[str, Mapping],
) -> list[dict]:
    """Rule `sink_ladder`: both ladders of every `pruning.ablation` setting of every model, from
    the evaluation results; writes the Markdown and the long CSV (numbers with the Markdown's
    decimals), returns the records."""
    from sinkprune.report import index_eval_files, load_results, write_records_csv

    files = eval_files if isinstance(eval_files, Mapping) else index_eval_files(eval_files)
    records: list[dict] = []
    cols: list[str] = []
    for model in models:
        for entry in ablation:
            for sparsity in entry["sparsities"]:
                for ladder in LADDERS:
                    rungs = ladder_variants(ladder, entry["sparsity_type"], sparsity)
                    res = load_results(files, model, rungs, tasks)
                    avg = ["avg"] if len(res.tasks) > 1 else []
                    cols = [*res.tasks, *avg, *res.heldout_cols]
                    records += ladder_records(res, model, ladder, rungs, cols)
    md_path, csv_path = Path(md_path), Path(csv_path)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(ladder_markdown(records, cols))
    write_records_csv(records, CSV_COLUMNS, csv_path)
    log.info("wrote %s and %s (%d records)", md_path, csv_path, len(records))
    return records
