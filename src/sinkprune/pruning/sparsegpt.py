"""`sparsegpt` (method.md §5): clean calibration, sequential, H = (2/N) Σ XᵀX, OBS updates."""

from __future__ import annotations

from dataclasses import asdict

import torch

from .base import CalibrationData, PruneSpec, PruningMethod, Result
from .driver import sequential
from .sparsegpt_solver import sparsegpt_solve
from .stats import Hessian


class SparseGPT(PruningMethod):
    name = "sparsegpt"

    def token_weights(self, calib: CalibrationData) -> torch.Tensor | None:
        """Per-token weights of the Hessian's rows; None (all ones) for plain SparseGPT."""
        return None

    def prune(self, adapter, calib: CalibrationData, spec: PruneSpec) -> Result:
        result = Result(spec.keep_masks)
        device = adapter.device

        def on_block(i: int, stats: dict) -> None:
            for name, lin in adapter.linears(i).items():
                key = f"{i}.{name}"
                W, mask, info = sparsegpt_solve(
                    lin.weight,
                    stats[name].value,
                    spec.sparsity,
                    spec.nm,
                    spec.blocksize,
                    spec.percdamp,
                    name=f"block {i} {name}",
                )
                lin.weight.data.copy_(W.to(lin.weight.dtype))
                result.record(key, mask)
                result.info[key] = asdict(info)

        sequential(
            adapter,
            calib.tokens,
            lambda lin: Hessian(lin.in_features, device),
            on_block,
            weights=self.token_weights(calib),
            batch_size=spec.batch_size,
            desc=self.name,
        )
        return result
