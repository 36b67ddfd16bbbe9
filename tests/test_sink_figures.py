"""Sink figures are written, non-empty and valid images (method.md §6)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from sinkprune.attention import MASS_SCHEMA, mass_table
from sinkprune.sink_figures import figure_paths, make_sink_figures, share_matrix
from sinkprune.sinks import compute_sink_scores, compute_sink_stats


def _model(tmp_path, name, kind, T=16, steps=((5, 0.5), (10, 1.0)), n=3):
    rng = np.random.default_rng(len(name))
    d = tmp_path / name
    d.mkdir()
    with pq.ParquetWriter(d / "mass.parquet", MASS_SCHEMA) as w:
        for s in range(n):
            for k, (step, t) in enumerate(steps):
                L = T if kind == "dlm" else int(np.ceil(t * T))
                m = rng.random((2, L))
                m[:, 0 if kind == "ar" else (s + 3 * k) % L] += 8
                w.write_table(mass_table(s, step, t, np.arange(L), np.zeros(L, bool), m))
    compute_sink_scores(d / "mass.parquet", d / "scores.parquet")
    compute_sink_stats(d / "scores.parquet", d / "stats.json", name, kind)
    return d / "scores.parquet", d / "stats.json"


def test_share_matrix_rows_sum_to_one(tmp_path):
    scores, _ = _model(tmp_path, "ar", "ar")
    df = pq.read_table(scores).to_pandas()
    steps, mat, T = share_matrix(df, 1)
    assert steps.tolist() == [5, 10] and T == 16
    assert np.isnan(mat[0, 8:]).all()  # AR prefix of 8 at t = 0.5
    assert np.allclose(np.nansum(mat, axis=1), 1.0)


def test_figures_written(tmp_path):
    dlm = _model(tmp_path, "tiny-dlm", "dlm")
    ar = _model(tmp_path, "tiny-ar", "ar")
    out = tmp_path / "fig"
    paths = make_sink_figures(
        [dlm[0], ar[0]], [dlm[1], ar[1]], ["tiny-dlm", "tiny-ar"], ["dlm", "ar"], 2, out
    )
    assert sorted(paths) == sorted(figure_paths(out))
    for p in paths:
        assert p.stat().st_size > 1000, p
    for name in ["heatmap", "dominant_position", "metrics"]:
        with Image.open(out / f"{name}.png") as im:
            assert im.size[0] > 300 and im.size[1] > 200
        assert (out / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    with Image.open(out / "animation.gif") as gif:
        assert gif.n_frames == 2
