"""Sink-dynamics figures, AR beside DLM (method.md §6), from scores.parquet and stats.json.

Outputs under `results/figures/sinks/` (`FIGURES`): `heatmap`, `dominant_position`, `metrics`
as PNG + PDF, and `animation.gif`. Colours: viridis for maps, Okabe-Ito for lines and bars.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.animation import FuncAnimation, PillowWriter  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from .artifacts import read_json, read_table  # noqa: E402
from .sinks import METRICS, SCORES_SCHEMA  # noqa: E402

log = logging.getLogger(__name__)

FIGURES = ["heatmap", "dominant_position", "metrics"]
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
KIND_LABEL = {"ar": "AR", "dlm": "DLM"}
SHORT = {
    "top1_share": "top-1\nshare",
    "top1pct_share": "top-1%\nshare",
    "entropy_norm": "normalised\nentropy",
    "dominant_pos_var": "var. dominant\nposition / T",
    "sink_jaccard": "sink-set\nJaccard",
    "dominant_at_zero": "dominant\nat position 0",
}

plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10})


def figure_paths(out_dir: str | Path) -> list[Path]:
    """Every file `make_sink_figures` writes."""
    out = Path(out_dir)
    return [out / f"{n}.{ext}" for n in FIGURES for ext in ("png", "pdf")] + [out / "animation.gif"]


def share_matrix(scores: pd.DataFrame, sample: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(steps (S,), share (S, T) = m_j / Σ_j m_j per step, NaN where absent, T) for one sample."""
    g = scores[scores["sample"] == sample]
    steps = np.sort(g["step"].unique())
    T = int(scores["position"].max()) + 1
    mat = np.full((len(steps), T), np.nan)
    for i, step in enumerate(steps):
        r = g[g["step"] == step]
        m = r["mass"].to_numpy(dtype=np.float64)
        mat[i, r["position"].to_numpy()] = m / m.sum()
    return steps, mat, T


def _order(models: list[str], kinds: list[str]) -> list[tuple[str, str, int]]:
    """(model, kind, input index): AR models first, then DLMs."""
    idx = list(range(len(models)))
    return [(models[i], kinds[i], i) for i in idx if kinds[i] == "ar"] + [
        (models[i], kinds[i], i) for i in idx if kinds[i] != "ar"
    ]


#: no creation date in the files, so a rerun writes them byte-identical
METADATA = {"pdf": {"CreationDate": None, "ModDate": None}, "png": {}}


def _save(fig, out_dir: Path, name: str) -> None:
    for ext in ("png", "pdf"):
        fig.savefig(out_dir / f"{name}.{ext}", dpi=150, bbox_inches="tight", metadata=METADATA[ext])
    plt.close(fig)


def plot_heatmaps(frames, order, n_samples: int, out_dir: Path) -> None:
    """(a) mass share over step (y) × position (x), rows = samples, columns = models."""
    samples = [sorted(frames[i]["sample"].unique())[:n_samples] for _, _, i in order]
    rows = max(len(s) for s in samples)
    mats = {}
    for (_, _, i), ss in zip(order, samples, strict=True):
        for s in ss:
            mats[(i, s)] = share_matrix(frames[i], s)
    vals = np.concatenate([m[1][np.isfinite(m[1])].ravel() for m in mats.values()])
    vals = vals[vals > 0]
    norm = LogNorm(vmin=max(vals.min(), 1e-4), vmax=vals.max())
    fig, axes = plt.subplots(
        rows,
        len(order),
        figsize=(3.6 * len(order) + 1, 2.4 * rows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    im = None
    for c, ((model, kind, i), ss) in enumerate(zip(order, samples, strict=True)):
        for r in range(rows):
            ax = axes[r, c]
            if r >= len(ss):
                ax.axis("off")
                continue
            steps, mat, T = mats[(i, ss[r])]
            im = ax.imshow(
                np.ma.masked_invalid(mat),
                aspect="auto",
                cmap="viridis",
                norm=norm,
                interpolation="nearest",
                extent=(-0.5, T - 0.5, len(steps) - 0.5, -0.5),
            )
            ax.set_yticks(range(len(steps)), [str(s) for s in steps])
            ax.set_title(f"{model} ({KIND_LABEL.get(kind, kind)}), sample {ss[r]}")
            if c == 0:
                ax.set_ylabel("step (AR: prefix)" if kind == "ar" else "step")
            if r == rows - 1 or r == len(ss) - 1:
                ax.set_xlabel("position")
    fig.colorbar(im, ax=axes, label=r"share of attention mass $m_j / \sum_i m_i$", shrink=0.8)
    _save(fig, out_dir, "heatmap")


def plot_dominant(frames, order, out_dir: Path) -> None:
    """(b) dominant sink position argmax_j m_j vs step, one line per sample, per model."""
    fig, axes = plt.subplots(
        1, len(order), figsize=(3.8 * len(order), 3.2), squeeze=False, layout="constrained"
    )
    for c, (model, kind, i) in enumerate(order):
        ax = axes[0, c]
        df = frames[i]
        T = int(df["position"].max()) + 1
        idx = df.groupby(["sample", "step"])["mass"].idxmax()
        dom = df.loc[idx, ["sample", "step", "position"]]
        for n, (s, g) in enumerate(dom.groupby("sample")):
            ax.plot(
                g["step"],
                g["position"],
                marker="o",
                ms=3,
                lw=1.2,
                color=OKABE_ITO[n % len(OKABE_ITO)],
                alpha=0.85,
                label=f"sample {s}" if n < 8 else None,
            )
        ax.set_ylim(-1, T)
        ax.set_xlabel("step")
        ax.set_title(f"{model} ({KIND_LABEL.get(kind, kind)})")
        if c == 0:
            ax.set_ylabel("dominant sink position")
    axes[0, -1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    _save(fig, out_dir, "dominant_position")


def plot_metrics(stats, order, out_dir: Path) -> None:
    """(c) grouped bars (mean ± std over samples) of every §6 metric, one bar per model."""
    keys = list(METRICS)
    width = 0.8 / len(order)
    fig, ax = plt.subplots(figsize=(1.6 * len(keys) + 2, 3.6))
    x = np.arange(len(keys))
    for n, (model, kind, i) in enumerate(order):
        met = stats[i]["metrics"]
        ax.bar(
            x + (n - (len(order) - 1) / 2) * width,
            [met[k]["mean"] for k in keys],
            width,
            yerr=[met[k]["std"] for k in keys],
            capsize=2,
            color=OKABE_ITO[n % len(OKABE_ITO)],
            hatch="//" if kind == "ar" else None,
            edgecolor="black",
            linewidth=0.5,
            label=f"{model} ({KIND_LABEL.get(kind, kind)})",
        )
    ax.set_xticks(x, [SHORT.get(k, k) for k in keys])
    ax.set_ylabel("value (mean ± std over samples)")
    ax.set_title("Sink concentration and stability")
    ax.legend(fontsize=8)
    _save(fig, out_dir, "metrics")


def sink_matrix(scores: pd.DataFrame, sample: int) -> np.ndarray:
    """(S, T) booleans: position j is a sink (s_j > 0.5) at that step; False where absent."""
    g = scores[scores["sample"] == sample]
    steps = np.sort(g["step"].unique())
    T = int(scores["position"].max()) + 1
    out = np.zeros((len(steps), T), dtype=bool)
    for i, step in enumerate(steps):
        r = g[g["step"] == step]
        out[i, r["position"].to_numpy()] = r["score"].to_numpy() > 0.5
    return out


def plot_animation(frames, order, out_dir: Path) -> None:
    """(d) GIF: mass share per position across steps for the first sample, one panel per model;
    sink positions (s_j > 0.5) in vermillion, others in blue."""
    panels = []
    for model, kind, i in order:
        s = int(sorted(frames[i]["sample"].unique())[0])
        steps, mat, T = share_matrix(frames[i], s)
        panels.append((model, kind, s, steps, mat, sink_matrix(frames[i], s), T))
    n_frames = max(len(p[3]) for p in panels)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4 * len(panels), 3), squeeze=False, layout="constrained"
    )
    bars, titles = [], []
    for c, (*_, mat, _sinks, T) in enumerate(panels):
        ax = axes[0, c]
        bars.append(ax.bar(range(T), np.zeros(T), color=OKABE_ITO[4], width=1.0))
        ax.set_ylim(0, np.nanmax(mat) * 1.05)
        ax.set_xlim(-0.5, T - 0.5)
        ax.set_xlabel("position")
        if c == 0:
            ax.set_ylabel("share of attention mass")
        titles.append(ax.set_title(""))

    def update(f):
        for (model, kind, s, steps, mat, sinks, _), bc, title in zip(
            panels, bars, titles, strict=True
        ):
            k = min(f, len(steps) - 1)
            for rect, h, is_sink in zip(bc, np.nan_to_num(mat[k]), sinks[k], strict=True):
                rect.set_height(h)
                rect.set_color(OKABE_ITO[5] if is_sink else OKABE_ITO[4])
            title.set_text(f"{model} ({KIND_LABEL.get(kind, kind)}) sample {s}, step {steps[k]}")
        return []

    anim = FuncAnimation(fig, update, frames=n_frames, blit=False)
    anim.save(out_dir / "animation.gif", writer=PillowWriter(fps=2), dpi=90)
    plt.close(fig)


def make_sink_figures(
    scores_paths: list[str | Path],
    stats_paths: list[str | Path],
    models: list[str],
    kinds: list[str],
    n_samples: int,
    out_dir: str | Path,
) -> list[Path]:
    """Stage `sink_figures`: all figures of `FIGURES` plus the GIF; returns the written paths."""
    if not (len(scores_paths) == len(stats_paths) == len(models) == len(kinds)):
        raise ValueError("sink_figures: scores, stats, models and kinds must have equal lengths")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols = ["sample", "step", "position", "mass", "score"]
    frames = [read_table(p, SCORES_SCHEMA, cols).to_pandas() for p in scores_paths]
    stats = [read_json(p) for p in stats_paths]
    order = _order(list(models), list(kinds))
    plot_heatmaps(frames, order, n_samples, out)
    plot_dominant(frames, order, out)
    plot_metrics(stats, order, out)
    plot_animation(frames, order, out)
    paths = figure_paths(out)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise RuntimeError(f"sink_figures: not written: {missing}")
    log.info("wrote %d sink figures to %s", len(paths), out)
    return paths
