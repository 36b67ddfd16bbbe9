"""The layer-wise allocation report (rule `allocation`, docs/methods.md#layer-wise-allocation):
per model, a table of each non-uniform allocation against its references (same method uniform;
a sink-aware method against its baseline with the same allocation) with paired 95% CIs, and a
figure of every compared checkpoint's achieved sparsity per block (from prune_report.json).
"""

from __future__ import annotations

import json
import logging
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
        ax2.set_xlabel("block", fontsize=8)
        ax2.set_ylabel("outlier scores (%)", fontsize=8)
        ax2.set_title("OWL: share of scores > M × block mean", fontsize=9)
        ax2.tick_params(labelsize=7)
        ax2.legend(fontsize=6)
    fig.tight_layout()
    return fig


def write_figure(fig, paths: Sequence[str | Path]) -> None:
    import matplotlib.pyplot as plt

    for p in paths:
        Path(p).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=150)
    plt.close(fig)


def comparison_names(names: Sequence[str]) -> list[tuple[str, str]]:
    """(variant, reference) name pairs among `names` (sinkprune.config.allocation_comparisons)."""
    pairs = allocation_comparisons([parse_variant(n) for n in names])
    return [(a.name, b.name) for a, b in pairs]
