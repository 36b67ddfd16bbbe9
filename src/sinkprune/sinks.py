"""Sink scores, down-weighting factors and sink statistics from the attention-mass parquet.

Scores (method.md §4), per (sample, step) over positions j with m_j = Σ_layers m^ℓ_j:
soft rule s_j = sigmoid(α·(m_j − μ − k·σ)) (μ mean, σ population std over j); binary rule
s_j = 1[m_j > mean of the other positions + ε]. ω_j = 1 − s_j.

Artifact `results/{model}/sinks/scores.parquet` (`SCORES_SCHEMA`), one row per
(sample, step, position): `mass` (= m_j), `score`, `omega`, and the per-sample averages over
steps `mean_score` (s̄_j) and `mean_omega` (ω̄_j = 1 − s̄_j, used by `sink_sgpt`), repeated on
every step's row. For an AR model only prefix positions exist at each step; s̄_j then averages
over the steps in which position j is present.

Statistics (method.md §6) go to `results/{model}/sinks/stats.json` and the AR-vs-DLM table
`results/tables/sink_properties.{md,csv}`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from .artifacts import read_json, read_table
from .attention import iter_sample_frames

log = logging.getLogger(__name__)

SCORES_SCHEMA = pa.schema(
    [
        pa.field("sample", pa.int32(), nullable=False),
        pa.field("step", pa.int16(), nullable=False),
        pa.field("t", pa.float32(), nullable=False),
        pa.field("position", pa.int32(), nullable=False),
        pa.field("mass", pa.float32(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
        pa.field("omega", pa.float32(), nullable=False),
        pa.field("mean_score", pa.float32(), nullable=False),
        pa.field("mean_omega", pa.float32(), nullable=False),
    ]
)

RULES = ("soft", "binary")


# ------------------------------------------------------------------ scores ---
def sink_scores(
    m: np.ndarray, rule: str = "soft", k: float = 2.0, alpha: float = 5.0, eps: float = 0.0
) -> np.ndarray:
    """Sink score s_j of each position of one mass vector m (T,) (method.md §4)."""
    m = np.asarray(m, dtype=np.float64)
    if rule == "soft":
        tau = m.mean() + k * m.std()
        z = alpha * (m - tau)
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # = sigmoid(z), overflow-free
    if rule == "binary":
        n = m.size
        if n < 2:
            return np.zeros_like(m)
        others = (m.sum() - m) / (n - 1)
        return (m > others + eps).astype(np.float64)
    raise ValueError(f"sinks.rule: expected one of {RULES}, got {rule!r}")


def sample_scores(
    frame: pd.DataFrame, rule: str, k: float, alpha: float, eps: float
) -> pd.DataFrame:
    """Score rows of one sample from its mass rows (columns step, t, layer, position, mass)."""
    m = frame.groupby(["step", "position"], sort=True)["mass"].sum().reset_index()
    t_of = frame.groupby("step")["t"].first()
    parts = []
    for step, g in m.groupby("step", sort=True):
        s = sink_scores(g["mass"].to_numpy(), rule, k, alpha, eps)
        parts.append(
            pd.DataFrame(
                {
                    "step": step,
                    "t": t_of[step],
                    "position": g["position"].to_numpy(),
                    "mass": g["mass"].to_numpy(),
                    "score": s,
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    out["omega"] = 1.0 - out["score"]
    out["mean_score"] = out.groupby("position")["score"].transform("mean")
    out["mean_omega"] = 1.0 - out["mean_score"]
    out.insert(0, "sample", int(frame["sample"].iat[0]))
    return out


def compute_sink_scores(
    mass_path: str | Path,
    out_path: str | Path,
    rule: str = "soft",
    k: float = 2.0,
    alpha: float = 5.0,
    binary_eps: float = 0.0,
) -> int:
    """Stage `sink_masks`: scores.parquet from mass.parquet (no model), one row group per sample."""
    if rule not in RULES:
        raise ValueError(f"sinks.rule: expected one of {RULES}, got {rule!r}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    n_rows = 0
    cols = ["step", "t", "layer", "position", "mass"]
    try:
        with pq.ParquetWriter(tmp, SCORES_SCHEMA, compression="zstd") as writer:
            for frame in tqdm(iter_sample_frames(mass_path, cols), desc="sink scores (sample)"):
                df = sample_scores(frame, rule, k, alpha, binary_eps)
                table = pa.Table.from_pandas(df, schema=SCORES_SCHEMA, preserve_index=False)
                writer.write_table(table, row_group_size=table.num_rows)
                n_rows += table.num_rows
        if n_rows == 0:
            raise ValueError(f"{mass_path}: no attention-mass rows")
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    log.info(
        "wrote %d score rows (rule=%s, k=%g, alpha=%g) to %s", n_rows, rule, k, alpha, out_path
    )
    return n_rows


def _vectors(path: str | Path, column: str, by: list[str]) -> dict:
    df = read_table(path, SCORES_SCHEMA, columns=[*by, "position", column]).to_pandas()
    out = {}
    for key, g in df.groupby(by, sort=True):
        g = g.drop_duplicates("position").sort_values("position")
        vec = np.ones(int(g["position"].max()) + 1, dtype=np.float32)
        vec[g["position"].to_numpy()] = g[column].to_numpy()
        out[tuple(int(v) for v in key) if len(by) > 1 else int(key[0])] = vec
    return out


def load_omega(path: str | Path) -> dict[tuple[int, int], np.ndarray]:
    """{(sample, step): ω (T,) float32} from scores.parquet, for `sink` / `sink_sp` (method.md §5).

    For an AR model the vector covers the step's prefix only.
    """
    return _vectors(path, "omega", ["sample", "step"])


def load_mean_omega(path: str | Path) -> dict[int, np.ndarray]:
    """{sample: ω̄ (T,) float32} = 1 − mean over steps of s, for `sink_sgpt` (method.md §5)."""
    return _vectors(path, "mean_omega", ["sample"])


# -------------------------------------------------------------- statistics ---
METRICS = {
    "top1_share": "share of mass on the top-1 position",
    "top1pct_share": "share of mass on the top-1% positions",
    "entropy_norm": "normalised entropy of m/Σm",
    "dominant_pos_var": "variance over steps of the dominant position (fraction of T)",
    "sink_jaccard": "mean Jaccard of sink sets {s>0.5} between consecutive steps",
    "dominant_at_zero": "share of steps whose dominant sink is position 0",
}


def concentration(m: np.ndarray) -> dict[str, float]:
    """Spatial concentration of one mass vector: top-1 share, top-1% share, normalised entropy."""
    m = np.asarray(m, dtype=np.float64)
    total = m.sum()
    p = m / total
    n_top = max(1, math.ceil(0.01 * m.size))
    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum() / math.log(m.size)) if m.size > 1 else 0.0
    return {
        "top1_share": float(p.max()),
        "top1pct_share": float(np.sort(p)[::-1][:n_top].sum()),
        "entropy_norm": entropy,
    }


def jaccard(a: set, b: set) -> float:
    """|a ∩ b| / |a ∪ b|; two empty sets count as identical (1.0)."""
    union = a | b
    return 1.0 if not union else len(a & b) / len(union)


def sample_stats(scores: pd.DataFrame, seqlen: int) -> dict[str, float]:
    """All §6 metrics of one sample from its score rows (step, position, mass, score).

    Concentration metrics are averaged over steps; the dominant position is argmax_j m_j (ties:
    lowest j) and its variance (population, over steps) is taken on position / T.
    """
    conc, dominant, sinks = [], [], []
    for _, g in scores.sort_values(["step", "position"]).groupby("step", sort=True):
        m = g["mass"].to_numpy()
        pos = g["position"].to_numpy()
        conc.append(concentration(m))
        dominant.append(int(pos[np.argmax(m)]))
        sinks.append(set(pos[g["score"].to_numpy() > 0.5].tolist()))
    dom = np.asarray(dominant, dtype=np.float64)
    pairs = [jaccard(a, b) for a, b in zip(sinks[:-1], sinks[1:], strict=True)]
    out = {key: float(np.mean([c[key] for c in conc])) for key in conc[0]}
    out["dominant_pos_var"] = float(np.var(dom / seqlen))
    out["sink_jaccard"] = float(np.mean(pairs)) if pairs else 1.0
    out["dominant_at_zero"] = float(np.mean(dom == 0))
    return out


def summarise(per_sample: list[dict[str, float]]) -> dict[str, dict]:
    """mean and std (ddof=1; 0 for a single sample) of each metric over samples."""
    out = {}
    for key in METRICS:
        vals = np.asarray([s[key] for s in per_sample], dtype=np.float64)
        std = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
        out[key] = {"mean": float(vals.mean()), "std": std, "per_sample": vals.tolist()}
    return out


def compute_sink_stats(
    scores_path: str | Path, out_path: str | Path, model: str, kind: str
) -> dict:
    """Stage `sink_stats`: stats.json with every §6 metric as mean ± std over samples."""
    df = read_table(scores_path, SCORES_SCHEMA, ["sample", "step", "position", "mass", "score"])
    df = df.to_pandas()
    if df.empty:
        raise ValueError(f"{scores_path}: no score rows")
    seqlen = int(df["position"].max()) + 1
    per_sample, samples = [], []
    for sid, g in df.groupby("sample", sort=True):
        per_sample.append(sample_stats(g, seqlen))
        samples.append(int(sid))
    result = {
        "model": model,
        "kind": kind,
        "n_samples": len(samples),
        "n_steps": int(df["step"].nunique()),
        "seqlen": seqlen,
        "samples": samples,
        "metrics": summarise(per_sample),
    }
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    Path(out_path).write_text(json.dumps(result, indent=2) + "\n")
    log.info(
        "%s (%s): %s",
        model,
        kind,
        ", ".join(f"{k}={v['mean']:.3f}" for k, v in result["metrics"].items()),
    )
    return result


def order_models(stats: list[dict]) -> list[dict]:
    """AR models first, then DLMs, each in the given order."""
    return [s for s in stats if s["kind"] == "ar"] + [s for s in stats if s["kind"] != "ar"]


def sink_properties_table(stats_paths: list[str | Path]) -> tuple[pd.DataFrame, str]:
    """(wide CSV frame, Markdown) of the metrics: rows = metrics, columns = AR then DLM models."""
    stats = order_models([read_json(p) for p in stats_paths])
    csv = pd.DataFrame({"metric": list(METRICS), "description": list(METRICS.values())})
    for s in stats:
        for what in ("mean", "std"):
            csv[f"{s['model']} {what}"] = [s["metrics"][k][what] for k in METRICS]
    head = ["metric", *(f"{s['model']} ({s['kind'].upper()})" for s in stats)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, desc in METRICS.items():
        cells = [f"{s['metrics'][key]['mean']:.3f} ± {s['metrics'][key]['std']:.3f}" for s in stats]
        lines.append(f"| {desc} | " + " | ".join(cells) + " |")
    note = ", ".join(
        f"{s['model']}: {s['n_samples']} samples × {s['n_steps']} steps" for s in stats
    )
    md = (
        "# Sink properties: AR vs diffusion LM (method.md §6)\n\n"
        + "\n".join(lines)
        + f"\n\nMean ± std over calibration samples ({note}). AR steps are growing prefixes.\n"
    )
    return csv, md


def write_sink_properties(
    stats_paths: list[str | Path], md_path: str | Path, csv_path: str | Path
) -> pd.DataFrame:
    """Stage `sink_properties`: results/tables/sink_properties.{md,csv}."""
    csv, md = sink_properties_table(stats_paths)
    Path(md_path).parent.mkdir(parents=True, exist_ok=True)
    Path(md_path).write_text(md)
    csv.to_csv(csv_path, index=False)
    return csv
