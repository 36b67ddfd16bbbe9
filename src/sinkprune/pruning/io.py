"""Files in and out of the `prune` rule: calibration + sink data in, HF checkpoint + report out.

`results/{model}/pruned/{variant}/` holds the pruned model (config.json with an `auto_map`,
*.safetensors, the standalone `configuration_{family}.py` / `modeling_{family}.py`), the base
model's tokenizer files and `prune_report.json` (written last, with the sha256 of every other
file). `dense` goes through the same path.
"""

from __future__ import annotations

import json
import logging
import platform
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from sinkprune.artifacts import checkpoint_digests, sha256_file

from .base import CalibrationData, PruneSpec, Result, SinkData, SinkNorms

log = logging.getLogger(__name__)

TOKENIZER_FILES = (
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab*",
    "merges.txt",
    "*.model",
    "*.tiktoken",
    "chat_template*",
    "generation_config.json",
)
REPORT = "prune_report.json"


# ------------------------------------------------------------------- inputs ---
def load_calibration(samples_path: str | Path) -> CalibrationData:
    from sinkprune.calibration import load_samples

    ids, tokens = load_samples(samples_path)
    return CalibrationData([int(i) for i in ids], tokens)


def load_sink_data(
    adapter,
    calib: CalibrationData,
    scores_path: str | Path,
    grid: list[tuple[int, float]],
    eps: float,
    noise_seed: int,
) -> SinkData:
    """Regenerate every x_t the attention stage saw (same NoiseSpec) and pair it with its stored
    ω; ω̄ per clean sample for `sink_sgpt` (method.md §2, §4, §5)."""
    from sinkprune.calibration import NoiseSpec, noised_batch
    from sinkprune.sinks import load_mean_omega, load_omega

    if not grid:
        raise ValueError("diffusion: the timestep grid is empty (check steps/sample_interval)")
    omega, mean_omega = load_omega(scores_path), load_mean_omega(scores_path)
    spec = NoiseSpec.for_adapter(adapter, eps, noise_seed)
    T = calib.tokens.shape[1]

    def vector(table: dict, key, what: str) -> np.ndarray:
        if key not in table:
            raise ValueError(
                f"{scores_path}: no {what} for {key}; were the scores computed from "
                "the same samples.parquet and diffusion grid?"
            )
        vec = table[key]
        if vec.shape[0] != T:
            raise ValueError(
                f"{scores_path}: {what} of {key} has {vec.shape[0]} positions, "
                f"the calibration windows have {T}"
            )
        return vec

    tokens, weights, keys = [], [], []
    for step, t in grid:
        x_t, _ = noised_batch(calib.sample_ids, calib.tokens, int(step), float(t), spec)
        tokens.append(x_t)
        for sid in calib.sample_ids:
            weights.append(vector(omega, (sid, int(step)), "ω (sample, step)"))
            keys.append((sid, int(step)))
    mean = [vector(mean_omega, sid, "ω̄ (sample)") for sid in calib.sample_ids]
    return SinkData(
        tokens=torch.cat(tokens),
        omega=torch.from_numpy(np.stack(weights)).float(),
        keys=keys,
        mean_omega=torch.from_numpy(np.stack(mean)).float(),
    )


# ------------------------------------------- precomputed sink norms (sink, sink_sp) ---
def load_sink_norms(adapter, norms_path: str | Path) -> tuple[SinkNorms, dict]:
    """(SinkNorms, file metadata) of `results/{model}/sinks/norms.safetensors` (rule sink_norms),
    checked against the model's blocks and linear widths."""
    from sinkprune.sink_norms import load_norms, read_metadata

    widths = [
        {name: lin.in_features for name, lin in adapter.linears(i).items()}
        for i in range(adapter.n_layers)
    ]
    return load_norms(norms_path, adapter.n_layers, widths), read_metadata(norms_path)


def norms_provenance(norms_path: str | Path, meta: dict) -> dict:
    """The calibration block of prune_report.json for a variant pruned from a norms file."""
    return {
        "sink_norms": str(norms_path),
        "sink_norms_sha256": sha256_file(norms_path),
        "sink_scores": meta.get("scores"),
        "grid": meta.get("grid"),
        "eps": meta.get("eps"),
        "noise_seed": meta.get("noise_seed"),
        "noised_inputs": int(meta["n_inputs"]),
    }


def dwanda_provenance(spec: PruneSpec, n_samples: int) -> dict:
    """The calibration block of prune_report.json for `dwanda` (its noised inputs)."""
    if spec.noise == "grid":
        return {
            "noise": "grid",
            "grid": [[int(s), float(t)] for s, t in spec.grid],
            "eps": spec.eps,
            "noise_seed": spec.noise_seed,
            "noised_inputs": n_samples * len(spec.grid),
        }
    return {
        "noise": "random",
        "mask_repeats": spec.mask_repeats,
        "t_min": spec.t_min,
        "t_max": spec.t_max,
        "eps": spec.eps,
        "noise_seed": spec.noise_seed,
        "noised_inputs": n_samples * spec.mask_repeats,
    }


# ------------------------------------------------------------------ outputs ---
def save_checkpoint(model, base_dir: str | Path, out_dir: str | Path, dtype=None) -> dict[str, str]:
    """save_pretrained (safetensors) + the family's standalone modelling files and `auto_map`
    (loads with plain transformers, `trust_remote_code=True`; sinkprune.models.standalone) + the
    base model's tokenizer files; {file: sha256} of them all (sinkprune.artifacts)."""
    from sinkprune.models import family_of
    from sinkprune.models.standalone import write_standalone

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stale = [
        *out.glob("*.safetensors"),
        *out.glob("configuration_*.py"),
        *out.glob("modeling_*.py"),
    ]
    for f in [*stale, out / "model.safetensors.index.json"]:
        f.unlink(missing_ok=True)
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(str(out), safe_serialization=True)
    write_standalone(out, family_of(model))
    for pattern in TOKENIZER_FILES:
        for f in Path(base_dir).glob(pattern):
            if f.is_file():
                shutil.copy2(f, out / f.name)
    return checkpoint_digests(out)


def base_dtype(model_dir: str | Path) -> torch.dtype | None:
    """The dtype the base checkpoint was stored in (config.json `dtype` / `torch_dtype`)."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    name = cfg.get("dtype") or cfg.get("torch_dtype")
    return getattr(torch, name) if isinstance(name, str) and hasattr(torch, name) else None


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process (ru_maxrss) and, on GPU, peak allocated CUDA memory."""
    out = {"max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def linear_params(adapter) -> int:
    return sum(
        lin.weight.numel() + (lin.bias.numel() if lin.bias is not None else 0)
        for i in range(adapter.n_layers)
        for lin in adapter.linears(i).values()
    )


def zero_fraction(adapter) -> dict[str, float]:
    """Share of exactly-zero weights per linear of the model as it will be saved."""
    return {
        f"{i}.{n}": float((lin.weight == 0).float().mean().item())
        for i in range(adapter.n_layers)
        for n, lin in adapter.linears(i).items()
    }


def build_report(adapter, result: Result, spec: PruneSpec, before: dict, **extra) -> dict:
    """prune_report.json: sparsity per linear and overall, structured sizes, spec, extras."""
    zeros = zero_fraction(adapter)
    per_linear = result.sparsity() or zeros
    total = sum(result.numel.values())
    overall = result.overall_sparsity() if total else float(np.mean(list(zeros.values())))
    report = {
        "method": spec.method,
        "sparsity_type": spec.sparsity_type,
        "target_sparsity": spec.sparsity,
        "spec": spec.as_dict(),
        "sparsity": {
            "overall": overall,
            "per_layer": result.layer_sparsity(),
            "per_linear": per_linear,
        },
        "zero_fraction": {
            "overall": float(np.mean(list(zeros.values()))),
            "per_linear": zeros,
        },
        "mask_sha256": result.digests,
        "params": {
            "total_before": before["total"],
            "total_after": sum(p.numel() for p in adapter.model.parameters()),
            "linear_before": before["linear"],
            "linear_after": linear_params(adapter),
        },
    }
    if result.removed:
        report["structured"] = {
            "n_heads": adapter.n_heads,
            "n_kv_heads": adapter.n_kv_heads,
            "mlp_hidden_size": adapter.mlp_hidden_size,
            "head_dim": adapter.head_dim,
            "removed_kv_groups": {str(i): r["heads"] for i, r in result.removed.items()},
            "removed_channels": {str(i): r["channels"] for i, r in result.removed.items()},
            "n_removed_per_layer": {
                str(i): {"kv_groups": len(r["heads"]), "channels": len(r["channels"])}
                for i, r in result.removed.items()
            },
        }
    if result.info:
        report["solver"] = result.info
    if result.allocation:
        report["allocation"] = result.allocation
    report.update(extra)
    return report


# ---------------------------------------------------------------------- run ---
def pick_device(device: str | None) -> torch.device:
    if device and device != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prune_checkpoint(
    model_dir: str | Path,
    samples_path: str | Path,
    out_dir: str | Path,
    variant: str,
    scores_path: str | Path | None = None,
    norms_path: str | Path | None = None,
    grid: list[tuple[int, float]] = (),
    eps: float = 1e-3,
    noise_seed: int = 0,
    seed: int = 0,
    blocksize: int = 128,
    percdamp: float = 0.01,
    batch_size: int = 8,
    threads: int = 1,
    device: str | None = None,
    timing_path: str | Path | None = None,
    mask_repeats: int = 8,
    t_min: float = 0.0,
    t_max: float = 1.0,
    owl_m: float = 5.0,
    owl_lambda: float = 0.08,
    schedule_epsilon: float = 0.08,
) -> dict:
    """Stage `prune`: load the dense model, prune it as `variant` says, save HF dir + report.

    `sink` / `sink_sp` read their statistics from `norms_path` (rule sink_norms) and run no
    forward; `sink_sgpt` regenerates x_t and reads ω̄ from `scores_path`; `dwanda` noises the
    windows itself (`mask_repeats`, `t_min`, `t_max`, or the `grid`, with `eps`, `noise_seed`).
    The variant's options (noise, weighting, norm, allocation) come from its name.
    The report holds only what the inputs and settings determine, so a rerun writes it
    byte-identical; wall-clock times and peak memory go to `timing_path` (the rule's log folder).
    """
    from sinkprune.config import parse_variant
    from sinkprune.models import get_adapter, load_model

    from . import get_method, prune_model

    t0 = time.perf_counter()
    torch.set_num_threads(max(1, int(threads)))
    v = parse_variant(variant)
    spec = PruneSpec(
        method=v.method,
        sparsity=v.sparsity,
        sparsity_type=v.sparsity_type if v.method != "dense" else "dense",
        blocksize=blocksize,
        percdamp=percdamp,
        batch_size=batch_size,
        seed=seed,
        keep_masks=False,
        noise=v.noise,
        weighting=v.weighting,
        norm=v.norm,
        allocation=v.allocation,
        mask_repeats=mask_repeats,
        t_min=t_min,
        t_max=t_max,
        eps=eps,
        noise_seed=noise_seed,
        grid=tuple((int(s), float(t)) for s, t in grid),
        owl_m=owl_m,
        owl_lambda=owl_lambda,
        schedule_epsilon=schedule_epsilon,
    )
    dev = pick_device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    work_dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    model = load_model(str(model_dir), device=str(dev), dtype=work_dtype)
    adapter = get_adapter(model)
    calib = load_calibration(samples_path)
    uses_norms = v.method != "dense" and get_method(v.method).uses_norms
    needs_sinks = v.method != "dense" and get_method(v.method).needs_sinks and not uses_norms
    needs_sinks = needs_sinks and v.weighting != "none"  # sink_sgpt with ω̄ ≡ 1 is sparsegpt
    noised = v.method == "dwanda"
    norms_meta = None
    if uses_norms:
        if norms_path is None:
            raise ValueError(
                f"variant {variant}: method {v.method} needs the sink norms "
                "(results/{model}/sinks/norms.safetensors, rule sink_norms) as norms_path"
            )
        calib.norms, norms_meta = load_sink_norms(adapter, norms_path)
        if norms_meta.get("sample_ids") != calib.sample_ids:
            raise ValueError(
                f"{norms_path}: computed from calibration samples {norms_meta.get('sample_ids')}, "
                f"{samples_path} has {calib.sample_ids}; rerun rule sink_norms"
            )
    if needs_sinks:
        if scores_path is None:
            raise ValueError(
                f"variant {variant}: method {v.method} needs sink scores (scores_path)"
            )
        calib.sinks = load_sink_data(adapter, calib, scores_path, grid, eps, noise_seed)
    log.info(
        "%s: %s on %s (%s), %d calibration windows of %d tokens%s",
        variant,
        model_dir,
        dev,
        work_dtype,
        len(calib.sample_ids),
        calib.tokens.shape[1],
        f", {calib.sinks.tokens.shape[0]} noised inputs" if needs_sinks else "",
    )
    if uses_norms:
        log.info("%s: statistics from %s (no forward)", variant, norms_path)
    before = {"total": sum(p.numel() for p in model.parameters()), "linear": linear_params(adapter)}
    t_prune = time.perf_counter()
    result = prune_model(adapter, calib, spec)
    prune_seconds = time.perf_counter() - t_prune
    files = save_checkpoint(model, model_dir, out_dir, dtype=base_dtype(model_dir))
    report = build_report(
        adapter,
        result,
        spec,
        before,
        variant=variant,
        base_model=str(model_dir),
        calibration={
            "samples": str(samples_path),
            "sample_ids": calib.sample_ids,
            "seqlen": int(calib.tokens.shape[1]),
            "sink_scores": str(scores_path) if needs_sinks else None,
            "grid": [[int(s), float(t)] for s, t in grid] if needs_sinks else None,
            "eps": eps if needs_sinks else None,
            "noise_seed": noise_seed if needs_sinks else None,
            "noised_inputs": int(calib.sinks.tokens.shape[0]) if needs_sinks else 0,
            **(norms_provenance(norms_path, norms_meta) if uses_norms else {}),
            **(dwanda_provenance(spec, len(calib.sample_ids)) if noised else {}),
        },
        seed=seed,
        device=str(dev),
        dtype=str(work_dtype).removeprefix("torch."),
        threads=int(threads),
        files=files,
        versions={"torch": torch.__version__, "python": platform.python_version()},
    )
    timing = {
        "variant": variant,
        "prune_seconds": prune_seconds,
        "wall_seconds": time.perf_counter() - t0,
        "peak_memory": peak_memory_mb(dev),
    }
    if timing_path is not None:
        Path(timing_path).parent.mkdir(parents=True, exist_ok=True)
        Path(timing_path).write_text(json.dumps(timing, indent=1) + "\n")
    path = Path(out_dir) / REPORT
    path.write_text(json.dumps(report, indent=1) + "\n")
    log.info(
        "%s: sparsity %.4f, %d -> %d parameters, %.1f s (peak memory %s); wrote %s",
        variant,
        report["sparsity"]["overall"],
        before["total"],
        report["params"]["total_after"],
        timing["wall_seconds"],
        timing["peak_memory"],
        path,
    )
    return report
