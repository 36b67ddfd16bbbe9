"""Sink statistics once per model: the summed column norms of `sink` / `sink_sp` (method.md §5).

The statistics of the sink-aware Wanda methods come from the *dense* model on the noised x_t and
do not depend on the sparsity, the N:M pattern or the structured ratio. Stage `sink_norms` runs
the dense model once over every (sample, step) x_t — regenerated exactly as the attention stage
saw them — and stores per linear

  a_c = Σ_(sample, step) ‖(ωX)_c‖₂   (set `sink`: token rows scaled by ω = 1 − s)
  a_c = Σ_(sample, step) ‖X_c‖₂      (set `none`: ω ≡ 1, the unweighted ablation rung)
  Σ_(sample, step) ‖(ωX)_c‖₂², Σ_(sample, step) ‖X_c‖₂²   (sets `sink_sq`, `none_sq`: Wanda's
                                      statistic over the same inputs, for `norm: rms`)

so every `sink` / `sink_sp` variant of the model, ablation rungs included, is a mask selection
with no forward.

Artifact `results/{model}/sinks/norms.safetensors`: one fp32 tensor (d_in,) per
(set, block, linear) named `{set}/{block}.{linear}` (e.g. `sink/0.q_proj`, `none_sq/31.ff_out`),
and one metadata entry `sinkprune`: a JSON object with `format` (`NORMS_FORMAT`; version 2 added
the `_sq` sets), `n_inputs` and the settings that fixed the inputs (grid, eps, noise seed,
sample ids, batch size, work dtype). Written to `.tmp` and renamed; the same inputs give the same
bytes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import torch

from .pruning.base import STORED, SinkNorms

log = logging.getLogger(__name__)

NORMS_FORMAT = "sinkprune.sink_norms/2"
METADATA_KEY = "sinkprune"  # the safetensors metadata entry holding the JSON header


def tensor_name(weighting: str, block: int, linear: str) -> str:
    return f"{weighting}/{block}.{linear}"


def save_norms(path: str | Path, norms: SinkNorms, meta: dict) -> None:
    """Write `norms` and `meta` (JSON-serialisable values) as safetensors, atomically."""
    from safetensors.torch import save_file

    tensors = {
        tensor_name(w, i, name): vec.detach().to("cpu", torch.float32).contiguous()
        for w, blocks in norms.norms.items()
        for i, block in enumerate(blocks)
        for name, vec in block.items()
    }
    # one metadata key: safetensors writes its metadata map in hash order, so several keys would
    # make the file's bytes differ from run to run
    header = {"format": NORMS_FORMAT, "n_inputs": norms.n_inputs, **meta}
    metadata = {METADATA_KEY: json.dumps(header, sort_keys=True)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_metadata(path: str | Path) -> dict:
    """The metadata of a norms file, JSON values decoded; raises if it is not one."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata() or {}
    meta = json.loads(raw[METADATA_KEY]) if METADATA_KEY in raw else {}
    if meta.get("format") != NORMS_FORMAT:
        raise ValueError(
            f"{path}: not a sink norms file (format {meta.get('format')!r}, expected "
            f"{NORMS_FORMAT!r}); rerun rule sink_norms"
        )
    return meta


def load_norms(
    path: str | Path,
    n_layers: int,
    in_features: dict[str, int] | list[dict[str, int]],
    stored: tuple[str, ...] = STORED,
) -> SinkNorms:
    """SinkNorms from a norms file, checked against the model: `n_layers` blocks and, per block,
    {linear: d_in} (one dict for all blocks, or one per block after structured changes)."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    tensors = load_file(str(path))
    per_block = in_features if isinstance(in_features, list) else [in_features] * n_layers
    norms: dict[str, list[dict[str, torch.Tensor]]] = {}
    for w in stored:
        blocks = []
        for i in range(n_layers):
            block = {}
            for name, d_in in per_block[i].items():
                key = tensor_name(w, i, name)
                if key not in tensors:
                    raise ValueError(
                        f"{path}: no tensor {key!r}; was it computed for this model "
                        f"({n_layers} blocks)? Rerun rule sink_norms"
                    )
                if tuple(tensors[key].shape) != (d_in,):
                    raise ValueError(
                        f"{path}: {key} has shape {tuple(tensors[key].shape)}, the model's "
                        f"linear takes {d_in} inputs"
                    )
                block[name] = tensors[key]
            blocks.append(block)
        norms[w] = blocks
    extra = {k.split("/", 1)[1].split(".", 1)[0] for k in tensors}
    if len(extra) != n_layers:
        raise ValueError(f"{path}: tensors for {len(extra)} blocks, the model has {n_layers}")
    return SinkNorms(norms, int(meta["n_inputs"]))


def compute_sink_norms(
    model_dir: str | Path,
    samples_path: str | Path,
    scores_path: str | Path,
    out_path: str | Path,
    grid: list[tuple[int, float]],
    eps: float,
    noise_seed: int,
    batch_size: int = 8,
    threads: int = 1,
    device: str | None = None,
    require_gpu: bool = False,
) -> dict:
    """Stage `sink_norms`: one dense pass over every noised x_t; writes norms.safetensors.

    The model runs as the `prune` job would run it (bf16 on CUDA, fp32 on CPU; statistics in
    fp32), so the masks equal those of computing the statistics inside the prune job.
    Returns the metadata written (the file's bytes depend only on the inputs and settings).
    """
    from .models import get_adapter, load_model
    from .pruning.io import load_calibration, load_sink_data, pick_device
    from .pruning.sink import sink_norms

    t0 = time.perf_counter()
    torch.set_num_threads(max(1, int(threads)))
    dev = pick_device(device)
    if require_gpu and dev.type != "cuda":
        raise RuntimeError(
            f"sink_norms for {model_dir}: the rule requested a GPU (resources.gpu > 0) but "
            "torch.cuda.is_available() is False; run on a GPU node"
        )
    work_dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    model = load_model(str(model_dir), device=str(dev), dtype=work_dtype)
    model.eval()
    adapter = get_adapter(model)
    calib = load_calibration(samples_path)
    grid = [(int(s), float(t)) for s, t in grid]
    sinks = load_sink_data(adapter, calib, scores_path, grid, eps, noise_seed)
    log.info(
        "%s: %d noised inputs (%d samples × %d steps) of %d tokens on %s (%s)",
        model_dir,
        sinks.tokens.shape[0],
        len(calib.sample_ids),
        len(grid),
        sinks.tokens.shape[1],
        dev,
        work_dtype,
    )
    with torch.no_grad():
        norms = sink_norms(adapter, sinks, batch_size)
    meta = {
        "model": str(model_dir),
        "samples": str(samples_path),
        "scores": str(scores_path),
        "sample_ids": calib.sample_ids,
        "seqlen": int(calib.tokens.shape[1]),
        "grid": [[s, t] for s, t in grid],
        "eps": eps,
        "noise_seed": noise_seed,
        "batch_size": batch_size,
        "n_layers": adapter.n_layers,
        "linear_names": list(adapter.linear_names),
        "stored": list(norms.norms),
        "device": str(dev),
        "dtype": str(work_dtype).removeprefix("torch."),
    }
    save_norms(out_path, norms, meta)  # no timings in the file: same inputs, same bytes
    log.info("wrote %s (%.1f s)", out_path, time.perf_counter() - t0)
    return meta
