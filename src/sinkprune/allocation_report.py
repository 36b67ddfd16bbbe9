"""The layer-wise allocation report (rule `allocation`, docs/methods.md#layer-wise-allocation):
per model, a table of each non-uniform allocation against its references (same method uniform;
a sink-aware method against its baseline with the same allocation) with paired 95% CIs, and a
figure of every compared checkpoint's achieved sparsity per block (from prune_report.json).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from sinkprune.config import allocation_comparisons, parse_variant

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ reading ---
def read_layer_sparsity(path: str | Path) -> dict:
    """{'variant', 'target', 'overall', 'per_layer': [..], 'allocated': [..] | None,
    'outlier_ratio': [..] | None} from a prune_report.json."""
    report = json.loads(Path(path).read_text())
    sp = report["sparsity"]
    if "per_layer" not in sp:
        raise ValueError(
            f"{path}: no sparsity.per_layer (written by an older sinkprune); rerun rule prune"
        )
    alloc = report.get("allocation", {})

    def ordered(d):
        return [d[k] for k in sorted(d, key=int)] if d else None

    return {
        "variant": report["variant"],
        "target": float(report["target_sparsity"]),
        "overall": float(sp["overall"]),
        "per_layer": ordered(sp["per_layer"]),
        "allocated": ordered(alloc.get("layer_sparsity")),
        "outlier_ratio": ordered(alloc.get("outlier_ratio")),
    }


# ------------------------------------------------------------------- figure ---
def layer_sparsity_figure(layers: Sequence[Mapping], model: str):
    """Achieved sparsity per block of each checkpoint (solid: non-uniform allocation, dashed:
    uniform), the target as a grey line; a second panel with OWL's outlier ratios when any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    owl = [r for r in layers if r["outlier_ratio"]]
    ncols = 2 if owl else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 3.4), squeeze=False)
    ax = axes[0, 0]
    for i, r in enumerate(layers):
        v = parse_variant(r["variant"])
        xs = list(range(len(r["per_layer"])))
        style = "--" if v.allocation == "uniform" else "-"
        ax.plot(xs, r["per_layer"], style, marker="o", ms=3, color=f"C{i}", label=r["variant"])
    for target in sorted({r["target"] for r in layers}):
        ax.axhline(target, color="0.6", lw=0.8, zorder=0)
    n_blocks = max(len(r["per_layer"]) for r in layers)
    ax.set_xticks(range(n_blocks))
    ax.set_xlabel("block", fontsize=8)
    ax.set_ylabel("achieved sparsity", fontsize=8)
    ax.set_title(f"{model}: sparsity per block", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)
    if owl:
        ax2 = axes[0, 1]
        for r in owl:
            i = layers.index(r)
            xs = list(range(len(r["outlier_ratio"])))
            ratios = [100 * d for d in r["outlier_ratio"]]
            ax2.plot(xs, ratios, marker="o", ms=3, color=f"C{i}", label=r["variant"])
        ax2.set_xticks(range(n_blocks))
        ax2.set_xlabel("block", fontsize=8)
        ax2.set_ylabel("outlier scores (%)", fontsize=8)
        ax2.set_title("OWL: share of scores > M × block mean", fontsize=9)
        ax2.tick_params(labelsize=7)
        ax2.legend(fontsize=6)
    fig.tight_layout()
    return fig


def write_figure(fig, paths: Sequence[str | Path]) -> None:
    """PNG / PDF without run-dependent metadata (the same reports give the same bytes)."""
    import matplotlib.pyplot as plt

    from sinkprune.report import PDF_METADATA, PNG_METADATA

    for p in map(Path, paths):
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=150, metadata=PDF_METADATA if p.suffix == ".pdf" else PNG_METADATA)
    plt.close(fig)


def comparison_names(names: Sequence[str]) -> list[tuple[str, str]]:
    """(variant, reference) name pairs among `names` (sinkprune.config.allocation_comparisons)."""
    pairs = allocation_comparisons([parse_variant(n) for n in names])
    return [(a.name, b.name) for a, b in pairs]


# -------------------------------------------------------------------- table ---
CSV_COLUMNS = [
    "model",
    "variant",
    "reference",
    "metric",
    "value",
    "stderr",
    "delta",
    "delta_lo",
    "delta_hi",
    "significant",
]


def allocation_records(res, model: str, layers: Sequence[Mapping], pairs, cols) -> list[dict]:
    """Long records: every variant's sparsity (overall, per block) and value ± stderr of every
    column, then every (variant, reference) pair's paired Δ with its CI."""
    from sinkprune.ablation import column_value
    from sinkprune.report import compare

    nan = math.nan
    out = []

    def rec(variant, reference, metric, value=nan, stderr=nan, d=None) -> dict:
        return {
            "model": model,
            "variant": variant,
            "reference": reference,
            "metric": metric,
            "value": value,
            "stderr": stderr,
            "delta": nan if d is None else d.delta,
            "delta_lo": nan if d is None else d.lo,
            "delta_hi": nan if d is None else d.hi,
            "significant": None if d is None else d.significant,
        }

    for lay in layers:
        name = lay["variant"]
        out.append(rec(name, "", "sparsity_overall", lay["overall"]))
        out += [rec(name, "", f"sparsity_block{i}", p) for i, p in enumerate(lay["per_layer"])]
        out += [rec(name, "", c, *column_value(res, name, c)) for c in cols]
    for variant, reference in pairs:
        out += [rec(variant, reference, c, d=compare(res, reference, variant, c)) for c in cols]
    return out


def allocation_markdown(model: str, records: Sequence[Mapping], cols: Sequence[str]) -> str:
    """Two tables: each variant's sparsity per block and values; each comparison's Δ [CI]."""
    from sinkprune.ablation import _cell_text
    from sinkprune.report import column_label, decimals, variant_label
    from sinkprune.statistics import LEVEL, SIGNIFICANT_MARK

    def label(name: str) -> str:
        return variant_label(parse_variant(name).label)

    values = [r for r in records if not r["reference"]]
    deltas = [r for r in records if r["reference"]]
    names = list(dict.fromkeys(r["variant"] for r in values))
    by = {(r["variant"], r["metric"]): r for r in values}
    lines = [
        f"# Layer-wise allocation: {model}",
        "",
        "Generated by `sinkprune.allocation_report` (docs/methods.md#layer-wise-allocation). "
        "Sparsity: achieved share of pruned weights, overall (parameter-weighted) and per block. "
        "Values ± standard error; accuracy in percent, held-out CE in nats and bits per token "
        "(lower is better).",
        "",
        "| Variant | Sparsity | Per block | " + " | ".join(map(column_label, cols)) + " |",
        "|:---|---:|:---|" + "---:|" * len(cols),
    ]
    for n in names:
        blocks = sorted(
            (int(m.removeprefix("sparsity_block")), r["value"])
            for (v, m), r in by.items()
            if v == n and m.startswith("sparsity_block")
        )
        per_block = " / ".join(f"{p:.3f}" for _, p in blocks)
        cells = [_cell_text(by[(n, c)], decimals(c), "") for c in cols]
        overall = by[(n, "sparsity_overall")]["value"]
        lines.append(f"| {label(n)} | {overall:.4f} | {per_block} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Δ = variant − reference on the same items / windows, paired {LEVEL:.0%} bootstrap CI; "
        f"{SIGNIFICANT_MARK} marks a CI that excludes 0.",
        "",
        "| Variant | Reference | " + " | ".join(map(column_label, cols)) + " |",
        "|:---|:---|" + "---:|" * len(cols),
    ]
    pairs = list(dict.fromkeys((r["variant"], r["reference"]) for r in deltas))
    dby = {(r["variant"], r["reference"], r["metric"]): r for r in deltas}
    for v, ref in pairs:
        cells = [_cell_text(dby[(v, ref, c)], decimals(c), SIGNIFICANT_MARK) for c in cols]
        lines.append(f"| {label(v)} | {label(ref)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def build_allocation_report(
    report_paths: Sequence[str | Path],
    eval_files,
    model: str,
    names: Sequence[str],
    tasks: Mapping[str, Mapping],
    table_paths: tuple[str | Path, str | Path],
    figure_paths: Sequence[str | Path],
) -> list[dict]:
    """Rule `allocation`: the table (Markdown, long CSV) and the per-block sparsity figure of
    `names` (the allocated variants and their references) of one model."""
    from sinkprune.report import decimals, index_eval_files, load_results, write_records_csv

    if not names:
        raise ValueError(f"allocation report of {model}: no variant with a non-uniform allocation")
    layers = [read_layer_sparsity(p) for p in report_paths]
    by_name = {lay["variant"]: lay for lay in layers}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"allocation report of {model}: no prune_report.json for {missing}")
    layers = [by_name[n] for n in names]
    files = eval_files if isinstance(eval_files, Mapping) else index_eval_files(eval_files)
    res = load_results(files, model, [parse_variant(n) for n in names], tasks)
    cols = [*res.tasks, *(["avg"] if len(res.tasks) > 1 else []), *res.heldout_cols]
    pairs = comparison_names(names)
    records = allocation_records(res, model, layers, pairs, cols)
    md, csv = map(Path, table_paths)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(allocation_markdown(model, records, cols))
    write_records_csv(
        records, CSV_COLUMNS, csv, lambda m: 6 if m.startswith("sparsity") else decimals(m)
    )
    write_figure(layer_sparsity_figure(layers, model), figure_paths)
    log.info("wrote %s, %s and %s", md, csv, ", ".join(map(str, figure_paths)))
    return records
