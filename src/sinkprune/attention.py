"""Per-timestep attention mass of the dense model on noised calibration inputs (method.md §3, §6).

Artifact: `results/{model}/attention/mass.parquet`, long format, one row per
(sample, step, layer, position) with the per-layer column mass m^ℓ_j = Σ_heads Σ_queries A_ij.
Schema `MASS_SCHEMA`; one parquet row group per sample, rows ordered by (sample, step, layer,
position). Per (sample, step, layer) the masses of a DLM sum to H·T.

Diffusion LM: step k feeds x_t = `noised_batch(..., step=k, t)` (all T positions present).
Autoregressive model (`adapter.causal`): step k feeds the clean prefix of the first ceil(t·T)
tokens with causal attention and no masking; positions beyond the prefix are absent from the
parquet (so per (sample, step, layer) the masses sum to H·n_k over n_k = ceil(t·T) rows).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:  # torch is imported where it is used: sink statistics read parquet only
    import torch

    from .calibration import NoiseSpec

log = logging.getLogger(__name__)

MASS_SCHEMA = pa.schema(
    [
        pa.field("sample", pa.int32(), nullable=False),
        pa.field("step", pa.int16(), nullable=False),
        pa.field("t", pa.float32(), nullable=False),
        pa.field("layer", pa.int16(), nullable=False),
        pa.field("position", pa.int32(), nullable=False),
        pa.field("token_id", pa.int32(), nullable=False),
        pa.field("masked", pa.bool_(), nullable=False),
        pa.field("mass", pa.float32(), nullable=False),
    ]
)


def prefix_length(t: float, seqlen: int) -> int:
    """AR step length ceil(t·T), at least 1 (tolerant to float noise such as 0.7·10)."""
    return max(1, min(seqlen, math.ceil(t * seqlen - 1e-9)))


def mass_table(
    sample: int,
    step: int,
    t: float,
    token_ids: np.ndarray,
    masked: np.ndarray,
    mass: np.ndarray,
) -> pa.Table:
    """Rows of one (sample, step): `mass` (L, n) per layer and position, tokens/mask (n,)."""
    n_layers, n = mass.shape
    rows = n_layers * n
    return pa.table(
        {
            "sample": np.full(rows, sample, np.int32),
            "step": np.full(rows, step, np.int16),
            "t": np.full(rows, t, np.float32),
            "layer": np.repeat(np.arange(n_layers, dtype=np.int16), n),
            "position": np.tile(np.arange(n, dtype=np.int32), n_layers),
            "token_id": np.tile(token_ids.astype(np.int32), n_layers),
            "masked": np.tile(masked.astype(bool), n_layers),
            "mass": mass.astype(np.float32).reshape(-1),
        },
        schema=MASS_SCHEMA,
    )


def sample_mass_tables(
    adapter,
    sample: int,
    tokens: torch.Tensor,
    grid: list[tuple[int, float]],
    spec: NoiseSpec,
    chunk_size: int,
    device: torch.device,
) -> Iterator[pa.Table]:
    """Tables of one sample, one per grid step (DLM: noised batch of all steps; AR: prefixes)."""
    import torch

    from .calibration import noised_batch

    T = tokens.shape[-1]
    if adapter.causal:
        for step, t in grid:
            n = prefix_length(t, T)
            x = tokens[:n].to(device)[None]
            with torch.no_grad():
                m = adapter.attention_mass(x, chunk_size=chunk_size)[:, 0]
            yield mass_table(
                sample, step, t, tokens[:n].numpy(), np.zeros(n, bool), m.float().cpu().numpy()
            )
        return
    rows = []
    for step, t in grid:
        x, masked = noised_batch([sample], tokens[None], step, t, spec)
        rows.append((step, t, x[0], masked[0]))
    x = torch.stack([r[2] for r in rows]).to(device)
    with torch.no_grad():
        m = adapter.attention_mass(x, chunk_size=chunk_size).float().cpu().numpy()  # (L, S, T)
    for i, (step, t, xs, ms) in enumerate(rows):
        yield mass_table(sample, step, t, xs.numpy(), ms.numpy(), m[:, i])


def pick_device(device: str | None = None) -> torch.device:
    import torch

    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def compute_attention_mass(
    model_dir: str | Path,
    samples_path: str | Path,
    out_path: str | Path,
    grid: list[tuple[int, float]],
    eps: float,
    seed: int,
    chunk_size: int,
    threads: int = 1,
    device: str | None = None,
    require_gpu: bool = False,
) -> int:
    """Stage `attention_mass`: run the dense model over samples × grid, stream rows to parquet.

    Writes `out_path` + ".tmp" and renames it at the end, so an interrupted run leaves no file.
    Returns the number of rows written. `require_gpu` (the rule asked for a GPU) raises instead of
    silently running a large model on CPU.
    """
    import torch
    from tqdm import tqdm

    from .calibration import NoiseSpec, load_samples
    from .models import get_adapter, load_model

    torch.set_num_threads(max(1, int(threads)))
    dev = pick_device(device)
    if require_gpu and dev.type != "cuda":
        raise RuntimeError(
            f"attention_mass for {model_dir}: the rule requested a GPU (resources.gpu > 0) but "
            "torch.cuda.is_available() is False; run on a GPU node"
        )
    dtype = torch.bfloat16 if dev.type == "cuda" else None  # mass itself is computed in fp32
    model = load_model(str(model_dir), device=str(dev), dtype=dtype)
    adapter = get_adapter(model)
    spec = NoiseSpec.for_adapter(adapter, eps, seed)
    sample_ids, tokens = load_samples(samples_path)
    grid = [(int(s), float(t)) for s, t in grid]
    if not grid:
        raise ValueError("diffusion: the timestep grid is empty (check steps/sample_interval)")
    log.info(
        "%s: %s model, %d layers, %d heads; %d samples × %d steps × T=%d on %s",
        model_dir,
        "causal" if adapter.causal else "bidirectional",
        adapter.n_layers,
        adapter.n_heads,
        len(sample_ids),
        len(grid),
        tokens.shape[1],
        dev,
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    n_rows = 0
    bar = tqdm(total=len(sample_ids) * len(grid), desc="attention mass (sample, step)")
    try:
        with pq.ParquetWriter(tmp, MASS_SCHEMA, compression="zstd") as writer:
            for sid, tok in zip(sample_ids, tokens, strict=True):
                tables = []
                for table in sample_mass_tables(
                    adapter, int(sid), tok, grid, spec, chunk_size, dev
                ):
                    tables.append(table)
                    bar.update(1)
                table = pa.concat_tables(tables)
                writer.write_table(table, row_group_size=table.num_rows)
                n_rows += table.num_rows
        os.replace(tmp, out_path)
    finally:
        bar.close()
        if tmp.exists():
            tmp.unlink()
    log.info("wrote %d rows to %s", n_rows, out_path)
    return n_rows


def read_row_group(pf, path, i: int, columns) -> pd.DataFrame:
    from .artifacts import ArtifactError

    try:
        return pf.read_row_group(i, columns=columns).to_pandas()
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid / IOError on corrupt pages
        raise ArtifactError(
            f"{path}: corrupt parquet data in row group {i} ({str(err).splitlines()[0]}); "
            "delete it and rerun the rule that writes it"
        ) from None


def iter_sample_frames(
    path: str | Path, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Yield one DataFrame per sample of a parquet whose rows are grouped by `sample`.

    Reads row group by row group, so memory holds one sample at a time (plus one row group).
    """
    from .artifacts import open_parquet

    pf = open_parquet(path, MASS_SCHEMA)
    cols = None if columns is None else list(dict.fromkeys(["sample", *columns]))
    pending: list[pd.DataFrame] = []
    for i in range(pf.num_row_groups):
        df = read_row_group(pf, path, i, cols)
        if df.empty:
            continue
        for sid, part in df.groupby("sample", sort=False):
            if pending and pending[0]["sample"].iat[0] != sid:
                yield pd.concat(pending, ignore_index=True)
                pending = []
            pending.append(part)
    if pending:
        yield pd.concat(pending, ignore_index=True)
