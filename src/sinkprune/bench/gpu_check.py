"""An 8B-shaped GPU check (`make bench-gpu`; not part of `make bench`).

Builds a random-weight model with LLaDA-8B's shapes (the `LLaDAConfig` defaults: d 4096,
32 layers, 32 heads, MLP 12288, vocab 126464, T 4096; or `--config` a checkpoint's config.json)
in bf16 on one GPU and runs, stage by stage, what a paper-scale job does with it:

  attention_mass    2 samples × 10 noise levels at T = 4096 (chunked column mass, method.md §3)
  sink_scores       scores.parquet from the mass (method.md §4)
  sink_norms        the statistics pass of `sink` / `sink_sp` over the 20 noised inputs (§5)
  mc_loglikelihood  20 MC log-likelihood requests (method.md §7, mc_num 128, cfg 0.5)
  prune_sink        one `sink` 50 % prune from those norms (mask selection only)
  prune_sink_sgpt   one `sink_sgpt` 50 % prune (sequential, layer by layer) on the dense model
                    rebuilt from the same seed (stage build_model_again)

and writes the seconds and peak GPU memory of every stage to JSON. The tests run it on CPU with
shrunk dimensions (`run_check(shape=...)`); on CPU the peak GPU memory is null. Not a
benchmark of ratios: absolute figures of one GPU, to size `resources.py` and SLURM requests.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

SMALL = dict(
    d_model=64,
    n_layers=2,
    n_heads=4,
    mlp_hidden_size=128,
    vocab_size=128,
    max_sequence_length=64,
    mask_token_id=127,
)


def model_config(shape: dict | None = None, config_path: str | Path | None = None):
    """LLaDAConfig: a checkpoint's config.json, else LLaDA-8B's shapes updated by `shape`."""
    from sinkprune.models import LLaDAConfig

    if config_path is not None:
        return LLaDAConfig.from_dict(json.loads(Path(config_path).read_text()))
    return LLaDAConfig(**(shape or {}))


def build_model(cfg, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """A random-weight LLaDA built directly on `device` in `dtype` (no host copy)."""
    from sinkprune.models import LLaDAModelLM, get_adapter

    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LLaDAModelLM(cfg)
    finally:
        torch.set_default_dtype(previous)
    return get_adapter(model.eval())


class Stages:
    """Runs named stages, recording seconds and peak memory of each."""

    def __init__(self, device: torch.device):
        self.device = device
        self.rows: list[dict] = []

    def __call__(self, name: str, fn: Callable[[], dict | None]) -> dict | None:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        with torch.no_grad():
            info = fn()
        if cuda:
            torch.cuda.synchronize(self.device)
        row = {
            "stage": name,
            "seconds": round(time.perf_counter() - start, 3),
            "peak_gpu_mb": round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
            if cuda
            else None,
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            **(info or {}),
        }
        self.rows.append(row)
        log.info("%s: %.1f s, peak GPU %s MB", name, row["seconds"], row["peak_gpu_mb"])
        return info


def attention_mass_stage(adapter, ids, tokens, grid, noise, chunk: int, path: Path) -> dict:
    """Stage attention_mass's loop for the given samples, streamed to `path` (parquet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sinkprune.attention import MASS_SCHEMA, sample_mass_tables

    rows = 0
    with pq.ParquetWriter(path, MASS_SCHEMA) as writer:
        for sid, tok in zip(ids, tokens, strict=True):
            tables = list(sample_mass_tables(adapter, sid, tok, grid, noise, chunk, adapter.device))
            table = pa.concat_tables(tables)
            writer.write_table(table)
            rows += table.num_rows
    return {"forwards": len(ids) * len(grid), "rows": rows, "chunk_size": chunk}


def likelihood_stage(adapter, n_requests: int, mc_num: int, batch_size: int, cfg: float) -> dict:
    """`n_requests` MC log-likelihood requests (method.md §7): random contexts of 96 tokens and
    continuations of 1–16, `mc_num` draws each in batches of `batch_size`."""
    from sinkprune.evaluation.likelihood import mc_loglikelihood

    rng = np.random.default_rng(0)
    vocab = adapter.config.vocab_size - 1
    ctx_len = min(96, adapter.max_length // 2)
    out = []
    for _ in range(n_requests):
        ctx = rng.integers(0, vocab, ctx_len).tolist()
        cont = rng.integers(0, vocab, int(rng.integers(1, 17))).tolist()
        out.append(
            mc_loglikelihood(
                adapter.mdm_logits,
                ctx,
                cont,
                adapter.mask_token_id,
                mc_num=mc_num,
                batch_size=batch_size,
                cfg=cfg,
                device=adapter.device,
            )
        )
    return {
        "requests": n_requests,
        "mc_num": mc_num,
        "cfg": cfg,
        "finite": bool(np.isfinite(out).all()),
    }


def run_check(
    shape: dict | None = None,
    config_path: str | Path | None = None,
    device: str | torch.device = "cuda",
    dtype: torch.dtype = torch.bfloat16,
    n_samples: int = 2,
    steps: int = 10,
    chunk_size: int = 64,  # config/paper.yaml attention.chunk_size
    n_requests: int = 20,
    mc_num: int = 128,
    mc_batch: int = 32,
    batch_size: int = 8,
    estimator_items: int = 5,
) -> dict:
    """Every stage on a random-weight model; returns the JSON-serialisable record."""
    from sinkprune.calibration import NoiseSpec
    from sinkprune.pruning import CalibrationData, PruneSpec, prune_model
    from sinkprune.pruning.io import load_sink_data
    from sinkprune.pruning.sink import sink_norms
    from sinkprune.sinks import compute_sink_scores

    device = torch.device(device)
    cfg = model_config(shape, config_path)
    T = cfg.max_sequence_length
    grid = [(s, s / steps) for s in range(1, steps + 1)]
    stages = Stages(device)
    holder = {}

    def build():
        holder["adapter"] = build_model(cfg, device, dtype)
        return {"params": sum(p.numel() for p in holder["adapter"].model.parameters())}

    stages("build_model", build)
    adapter = holder.pop("adapter")
    ids = list(range(n_samples))
    tokens = torch.randint(0, cfg.vocab_size - 1, (n_samples, T), generator=torch.Generator())
    calib = CalibrationData(ids, tokens)
    noise = NoiseSpec.for_adapter(adapter, 1e-3, 0)
    with tempfile.TemporaryDirectory(prefix="sinkprune-gpu-check-") as tmp:
        mass, scores = Path(tmp) / "mass.parquet", Path(tmp) / "scores.parquet"
        stages(
            "attention_mass",
            lambda: attention_mass_stage(adapter, ids, tokens, grid, noise, chunk_size, mass),
        )
        stages("sink_scores", lambda: {"rows": compute_sink_scores(mass, scores)})
        calib.sinks = load_sink_data(adapter, calib, scores, grid, 1e-3, 0)

    def norms_stage():
        holder["norms"] = sink_norms(adapter, calib.sinks, batch_size)
        return {"forwards": int(calib.sinks.tokens.shape[0]), "batch_size": batch_size}

    stages("sink_norms", norms_stage)
    stages(
        "mc_loglikelihood",
        lambda: likelihood_stage(adapter, n_requests, mc_num, mc_batch, cfg=0.5),
    )

    def estimator():  # issue #19: today's path vs the fast estimator, requests/s on this shape
        from sinkprune.bench.likelihood import device_check

        check = device_check(adapter, device, n_items=estimator_items, context_len=min(256, T - 16))
        return {"requests": check["requests"], "speedup": round(check["speedup"], 3),
                "requests_per_s": {r["setting"]: r["requests_per_s"] for r in check["rows"]}}  # fmt: skip

    stages("estimator_throughput", estimator)

    def sink_prune():
        calib.norms = holder["norms"]
        res = prune_model(adapter, calib, PruneSpec("sink", 0.5, keep_masks=False))
        return {"sparsity": round(res.overall_sparsity(), 4)}

    stages("prune_sink", sink_prune)
    del adapter
    if device.type == "cuda":
        torch.cuda.empty_cache()
    stages("build_model_again", build)  # the same dense weights again (same seed)
    adapter = holder.pop("adapter")

    def sgpt_prune():
        spec = PruneSpec("sink_sgpt", 0.5, keep_masks=False, batch_size=batch_size)
        res = prune_model(adapter, calib, spec)
        return {"sparsity": round(res.overall_sparsity(), 4), "samples": n_samples}

    stages("prune_sink_sgpt", sgpt_prune)
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "ran_on_gpu": device.type == "cuda",
        "dtype": str(dtype).removeprefix("torch."),
        "shape": {
            "d_model": cfg.d_model,
            "n_layers": cfg.n_layers,
            "n_heads": cfg.n_heads,
            "mlp_hidden_size": cfg.mlp_hidden_size,
            "vocab_size": cfg.vocab_size,
            "seqlen": T,
        },
        "settings": {
            "samples": n_samples,
            "steps": steps,
            "chunk_size": chunk_size,
            "requests": n_requests,
            "mc_num": mc_num,
            "mc_batch": mc_batch,
            "batch_size": batch_size,
        },
        "stages": stages.rows,
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="8B-shaped GPU check of sinkprune's stages.")
    p.add_argument("--out", default="results/bench/gpu_check.json")
    p.add_argument("--config", default=None, help="a LLaDA config.json (default: LLaDA-8B)")
    p.add_argument("--device", default="cuda")
    p.add_argument(
        "--small", action="store_true", help="shrunk dimensions (a smoke run, e.g. on CPU)"
    )
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(
            "gpu_check: no CUDA device (torch.cuda.is_available() is False); it needs one GPU "
            "(the 8B weights alone are 16 GB in bf16). `--device cpu --small` runs the same "
            "stages with shrunk dimensions."
        )
    if a.small:
        record = run_check(shape=SMALL, device=a.device, dtype=torch.float32, steps=2, mc_num=8)
    else:
        record = run_check(config_path=a.config, device=a.device)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()
