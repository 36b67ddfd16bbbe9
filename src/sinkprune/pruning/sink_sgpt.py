"""`sink_sgpt` (sink-aware SparseGPT, method.md §5): SparseGPT on clean inputs whose Hessian rows
are scaled by ω̄ = 1 − s̄ (sink score averaged over the timesteps, per sample and position).

`weighting: none` takes ω̄ ≡ 1, which *is* `sparsegpt` (same clean inputs, same sequential
pass): the SparseGPT ablation ladder has one rung (tests/test_ablation.py checks the identity).
"""

from __future__ import annotations

import torch

from .base import CalibrationData, PruneSpec, PruningMethod
from .sparsegpt import SparseGPT


class SinkSGPT(SparseGPT):
    name = "sink_sgpt"
    needs_sinks = True

    def token_weights(self, calib: CalibrationData, spec: PruneSpec) -> torch.Tensor | None:
        if spec.weighting == "none":
            return None
        w = PruningMethod.sink_data(calib, self.name).mean_omega
        if tuple(w.shape) != tuple(calib.tokens.shape):
            raise ValueError(
                f"sink_sgpt: mean ω has shape {tuple(w.shape)}, expected one row per calibration "
                f"sample {tuple(calib.tokens.shape)} (sink scores and samples.parquet disagree)"
            )
        return w
