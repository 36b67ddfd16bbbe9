"""`wanda` (method.md §5): clean calibration, sequential; S = |W|·sqrt(r), r_c = mean ‖X_c‖²."""

from __future__ import annotations

import torch

from .base import CalibrationData, PruneSpec, PruningMethod, Result, mask_linear
from .driver import sequential
from .stats import MeanSquaredNorm


def wanda_scores(weight: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    """S_rc = |W_rc| · norm_c (norm: sqrt(r) for Wanda, the summed ω-weighted norm a for sink)."""
    return weight.detach().abs().float() * norm.to(weight.device, torch.float32).unsqueeze(0)


class Wanda(PruningMethod):
    name = "wanda"

    def prune(self, adapter, calib: CalibrationData, spec: PruneSpec) -> Result:
        result = Result(spec.keep_masks)
        device = adapter.device

        def on_block(i: int, stats: dict) -> None:
            for name, lin in adapter.linears(i).items():
                scores = wanda_scores(lin.weight, stats[name].norm)
                mask_linear(lin, scores, spec, result, f"{i}.{name}", self.scope)

        sequential(
            adapter,
            calib.tokens,
            lambda lin: MeanSquaredNorm(lin.in_features, device),
            on_block,
            batch_size=spec.batch_size,
            desc=self.name,
        )
        return result
