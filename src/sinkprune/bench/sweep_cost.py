"""Sweep cost: model forwards of a paper-shaped sink-aware sweep, counted by a hook.

The sweep is the paper's sink-aware Wanda grid on one model: `sink` at 25 / 50 / 75 %, 2:4 and
4:8, and `sink_sp` at ratios 0.3 / 0.5 (7 variants), on a random-weight model with the embedded
`tiny-dlm` shape. Three ways to produce it, each calling the workflow's own stage functions:

- **sinkprune**: attention mass once, sink scores once, sink norms once (rule `sink_norms`),
  then 7 prune jobs that only select masks;
- **sinkprune before #13**: mass and scores once, then every prune job runs its own
  statistics pass over all noised x_t (the recompute path, `prune_model` without norms);
- **release-style**: every variant recomputes the attention mass, the scores and the
  statistics, as one run of the authors' script per variant does.

Forwards are counted by `ForwardCounter` (a hook on every transformer block: block rows / L),
not computed. The second table times one `sink` prune job (from the norms file) against one
`magnitude` prune job on the same model, side by side.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from ._counter import ForwardCounter
from ._timing import paired, seconds, table

SWEEP = [
    "sink_unstructured_0.25",
    "sink_unstructured_0.5",
    "sink_unstructured_0.75",
    "sink_2of4_0.5",
    "sink_4of8_0.5",
    "sink_sp_structured_0.3",
    "sink_sp_structured_0.5",
]
# the embedded tiny-dlm (config/config.yaml) and its calibration: 16 windows of 64, 10 steps
FULL = dict(d_model=128, n_layers=4, n_heads=4, mlp=352, vocab=512, T=64, N=16, steps=10)
QUICK = dict(d_model=32, n_layers=2, n_heads=2, mlp=64, vocab=64, T=16, N=2, steps=2)
EPS, SEED, CHUNK = 1e-3, 0, 64


def build(root: Path, shape: dict) -> dict[str, Path]:
    """A random-weight LLaDA checkpoint and random calibration windows under `root`."""
    from sinkprune.calibration import write_samples
    from sinkprune.models import LLaDAConfig, LLaDAModelLM

    torch.manual_seed(0)
    cfg = LLaDAConfig(
        d_model=shape["d_model"],
        n_layers=shape["n_layers"],
        n_heads=shape["n_heads"],
        n_kv_heads=shape["n_heads"],
        mlp_hidden_size=shape["mlp"],
        vocab_size=shape["vocab"],
        max_sequence_length=shape["T"],
        mask_token_id=shape["vocab"] - 1,
    )
    LLaDAModelLM(cfg).save_pretrained(root / "model")
    windows = np.random.default_rng(0).integers(0, shape["vocab"] - 1, (shape["N"], shape["T"]))
    write_samples(windows.astype(np.int32), root / "samples.parquet")
    return {"model": root / "model", "samples": root / "samples.parquet"}


def grid(steps: int) -> list[tuple[int, float]]:
    return [(s, s / steps) for s in range(1, steps + 1)]


def mass_and_scores(files: dict, out: Path, g: list) -> Path:
    """Stages attention_mass and sink_masks; returns scores.parquet."""
    from sinkprune.attention import compute_attention_mass
    from sinkprune.sinks import compute_sink_scores

    compute_attention_mass(
        files["model"], files["samples"], out / "mass.parquet", g, EPS, SEED, CHUNK
    )
    compute_sink_scores(out / "mass.parquet", out / "scores.parquet")
    return out / "scores.parquet"


def norms(files: dict, scores: Path, out: Path, g: list) -> Path:
    """Stage sink_norms; returns norms.safetensors."""
    from sinkprune.sink_norms import compute_sink_norms

    path = out / "norms.safetensors"
    compute_sink_norms(files["model"], files["samples"], scores, path, g, EPS, SEED)
    return path


def prune(files: dict, variant: str, out: Path, norms_path: Path | None = None) -> dict:
    from sinkprune.pruning.io import prune_checkpoint

    return prune_checkpoint(
        files["model"], files["samples"], out / variant, variant, norms_path=norms_path
    )


def fingerprint(report: dict) -> dict:
    """What a variant pruned: mask digests, or the removed heads and channels (structured)."""
    if "structured" in report:
        s = report["structured"]
        return {"heads": s["removed_kv_groups"], "channels": s["removed_channels"]}
    return {"masks": report["mask_sha256"]}


def prune_recomputing(files: dict, variant: str, scores: Path, out: Path, g: list) -> dict:
    """The prune job before #13: its own statistics pass over every noised x_t."""
    from sinkprune.config import parse_variant
    from sinkprune.models import get_adapter, load_model
    from sinkprune.pruning import PruneSpec, prune_model
    from sinkprune.pruning.io import load_calibration, load_sink_data, save_checkpoint

    adapter = get_adapter(load_model(str(files["model"]), dtype=torch.float32))
    calib = load_calibration(files["samples"])
    calib.sinks = load_sink_data(adapter, calib, scores, g, EPS, SEED)
    v = parse_variant(variant)
    result = prune_model(adapter, calib, PruneSpec(v.method, v.sparsity, v.sparsity_type))
    save_checkpoint(adapter.model, files["model"], out / variant)
    if result.removed:
        return {
            "heads": {str(i): r["heads"] for i, r in result.removed.items()},
            "channels": {str(i): r["channels"] for i, r in result.removed.items()},
        }
    return {"masks": result.digests}


def sinkprune_sweep(files: dict, out: Path, g: list) -> dict:
    scores = mass_and_scores(files, out, g)
    path = norms(files, scores, out, g)
    return {v: fingerprint(prune(files, v, out, path)) for v in SWEEP}


def before_sweep(files: dict, out: Path, g: list) -> dict:
    scores = mass_and_scores(files, out, g)
    return {v: prune_recomputing(files, v, scores, out, g) for v in SWEEP}


def release_sweep(files: dict, out: Path, g: list) -> dict:
    digests = {}
    for v in SWEEP:
        run_dir = out / v
        run_dir.mkdir(parents=True)
        scores = mass_and_scores(files, run_dir, g)
        path = norms(files, scores, run_dir, g)
        digests[v] = fingerprint(prune(files, v, run_dir, path))
    return digests


def run(quick: bool = False) -> dict:
    torch.set_num_threads(1)
    shape = QUICK if quick else FULL
    g = grid(shape["steps"])
    quiet = logging.getLogger("sinkprune")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        with tempfile.TemporaryDirectory(prefix="sinkprune-sweep-") as tmp:
            root = Path(tmp)
            files = build(root, shape)
            arms = {}
            for name, sweep in (
                ("sinkprune", sinkprune_sweep),
                ("sinkprune before #13", before_sweep),
                ("release-style", release_sweep),
            ):
                out = root / name.replace(" ", "_").replace("#", "")
                out.mkdir()
                with ForwardCounter() as counter:
                    secs, digests = seconds(lambda sweep=sweep, out=out: sweep(files, out, g))
                arms[name] = {
                    "forwards": counter.forwards(shape["n_layers"]),
                    "block_calls": counter.calls,
                    "tokens": counter.tokens // shape["n_layers"],
                    "seconds": round(secs, 2),
                    "digests": digests,
                }
            norms_path = root / "sinkprune" / "norms.safetensors"
            timing = paired(
                lambda: prune(files, "sink_unstructured_0.5", root / "t_sink", norms_path),
                lambda: prune(files, "magnitude_unstructured_0.5", root / "t_mag"),
                2 if quick else 3,
            )
            timing.pop("result_ours")
            timing.pop("result_reference")
    finally:
        quiet.setLevel(level)
    release = arms["release-style"]
    same = all(arm["digests"] == release["digests"] for arm in arms.values())
    rows = []
    for name, arm in arms.items():
        digests = arm.pop("digests")
        rows.append(
            {
                "arm": name,
                **arm,
                "forwards_ratio_to_release": arm["forwards"] / release["forwards"],
                "seconds_ratio_to_release": arm["seconds"] / release["seconds"],
                "n_variants": len(digests),
            }
        )
    ours = rows[0]
    n, s = shape["N"], shape["steps"]
    headline = (
        f"sweep forwards sinkprune / release-style = {ours['forwards']:.0f} / "
        f"{release['forwards']:.0f} = {ours['forwards_ratio_to_release']:.3f} (goal ≤ 0.2)"
    )
    # a sink prune job vs a magnitude prune job: t_sink / t_magnitude per pair
    per_pair = [
        s / m for s, m in zip(timing["seconds_ours"], timing["seconds_reference"], strict=True)
    ]
    ratio = {"median": float(np.median(per_pair)), "min": min(per_pair), "max": max(per_pair)}
    md_rows = [
        [
            r["arm"],
            f"{r['forwards']:.0f}",
            f"{r['forwards_ratio_to_release']:.3f}",
            f"{r['seconds']:.1f}",
            f"{r['seconds_ratio_to_release']:.2f}",
        ]
        for r in rows
    ]
    md = "\n".join(
        [
            "## Sweep cost: forwards of a paper-shaped sink-aware sweep (counted)",
            "",
            f"7 variants (sink 25/50/75 %, 2:4, 4:8; sink_sp 0.3/0.5) of a random-weight LLaDA "
            f"with d {shape['d_model']}, {shape['n_layers']} layers, {shape['n_heads']} heads, "
            f"MLP {shape['mlp']}; calibration {n} windows × T = {shape['T']}, {s} noise levels "
            f"({n * s} noised inputs). A forward = one window through all blocks, counted by a "
            "hook on the blocks. Seconds: one run of each arm on the shared 2-core machine "
            "(1 thread), the whole stage chain including file I/O.",
            "",
            table(["arm", "forwards", "vs release", "seconds", "vs release"], md_rows),
            "",
            f"**{headline}.** Masks of the sinkprune arm equal the release-style arm's: "
            f"{'yes' if same else 'NO'} (all three arms, all 7 variants). The floor is one mass pass plus one statistics pass "
            f"({2 * n * s} forwards); per model the paper-scale sweep needs 2 × 1 280 forwards of "
            "4 096 tokens instead of 7 × 2 × 1 280.",
            "",
            f"One `sink` prune job (from norms.safetensors) against one `magnitude` prune job, "
            f"50% unstructured, same model: t_sink / t_magnitude = {ratio['median']:.2f} "
            f"({ratio['min']:.2f}–{ratio['max']:.2f}, {len(per_pair)} interleaved pairs; "
            f"best {min(timing['seconds_ours']):.2f} s vs {min(timing['seconds_reference']):.2f} s).",
        ]
    )
    return {
        "name": "sweep_cost",
        "title": "Sweep cost (forwards counted)",
        "shapes": {**shape, "variants": SWEEP, "noised_inputs": n * s},
        "rows": rows,
        "masks_equal_across_arms": same,
        "prune_job_sink_vs_magnitude": {
            "seconds_sink": timing["seconds_ours"],
            "seconds_magnitude": timing["seconds_reference"],
            "ratio_per_pair": [round(r, 3) for r in per_pair],
            "ratio_median": round(ratio["median"], 3),
        },
        "headline": headline,
        "markdown": md,
    }
