"""`dwanda` (DWANDA, diffusion-aware Wanda; arXiv 2605.06366, docs/methods.md#dwanda): Wanda
whose calibration windows are noised as a diffusion LM sees them — sequential, S = |W|·sqrt(r),
r_c = mean over the noised inputs of ‖X_c‖².

`noise: random` (the study's definition): every window copied `mask_repeats` times, copy c of
sample s with its own t ~ U[t_min, t_max] and each position masked with p(t) = (1 − ε)·t + ε,
seeded by (calibration.seed, s, c) (`sinkprune.calibration.random_t_copies`).
`noise: grid` (an ablation rung): exactly the x_t of the diffusion grid that the attention and
sink stages see (`sinkprune.calibration.grid_copies`).
"""

from __future__ import annotations

import logging

import torch

from .base import CalibrationData, PruneSpec
from .wanda import Wanda

log = logging.getLogger(__name__)


def dwanda_inputs(adapter, calib: CalibrationData, spec: PruneSpec) -> torch.Tensor:
    """The noised calibration inputs of `dwanda` (module docstring), on the tokens' device."""
    from sinkprune.calibration import NoiseSpec, grid_copies, random_t_copies

    noise = NoiseSpec.for_adapter(adapter, spec.eps, spec.noise_seed)
    if spec.noise == "grid":
        x = grid_copies(calib.sample_ids, calib.tokens, list(spec.grid), noise)
        log.info("dwanda: %d x_t of the diffusion grid (%d levels)", x.shape[0], len(spec.grid))
        return x
    if spec.noise != "random":
        raise ValueError(f"dwanda: noise {spec.noise!r} is unknown (expected 'random' or 'grid')")
    x, t = random_t_copies(
        calib.sample_ids, calib.tokens, spec.mask_repeats, spec.t_min, spec.t_max, noise
    )
    log.info(
        "dwanda: %d copies (%d × %d) with t ~ U[%g, %g]: mean t %.3f, masked share %.3f",
        x.shape[0],
        len(calib.sample_ids),
        spec.mask_repeats,
        spec.t_min,
        spec.t_max,
        float(t.mean()),
        float((x == noise.mask_id).float().mean()),
    )
    return x


class DWanda(Wanda):
    name = "dwanda"

    def inputs(self, adapter, calib: CalibrationData, spec: PruneSpec) -> torch.Tensor:
        return dwanda_inputs(adapter, calib, spec)
