"""`sparsegpt` (method.md §5): clean calibration, sequential, H = (2/N) Σ XᵀX, OBS updates."""

from __future__ import annotations

from dataclasses import asdict

import torch

from .base import CalibrationData, PruneSpec, PruningMethod, Result
from .driver import sequential
from .sparsegpt_solver import obs_scores, sparsegpt_solve
from .stats import Hessian


class SparseGPT(PruningMethod):
    name = "sparsegpt"

    def token_weights(self, calib: CalibrationData, spec: PruneSpec) -> torch.Tensor | None:
        """Per-token weights of the Hessian's rows; None (all ones) for plain SparseGPT."""
        return None

    def _pass(self, adapter, calib, spec: PruneSpec, on_block, desc: str) -> None:
        device = adapter.device
        sequential(
            adapter,
            calib.tokens,
            lambda lin: Hessian(lin.in_features, device),
            on_block,
            weights=self.token_weights(calib, spec),
            batch_size=spec.batch_size,
            desc=desc,
        )

    def prune(self, adapter, calib: CalibrationData, spec: PruneSpec, alloc=None) -> Result:
        result = Result(spec.keep_masks)

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
                    count=alloc.count(key) if alloc else None,
                )
                lin.weight.data.copy_(W.to(lin.weight.dtype))
                result.record(key, mask)
                result.info[key] = asdict(info)

        self._pass(adapter, calib, spec, on_block, self.name)
        return result

    def block_scores(self, adapter, calib: CalibrationData, spec: PruneSpec, visit) -> None:
        """W²/diag(U)² of every block from the *dense* model's Hessians (nothing pruned)."""

        def on_block(i: int, stats: dict) -> None:
            visit(
                i,
                {
                    name: obs_scores(lin.weight, stats[name].value, spec.percdamp, f"{i}.{name}")
                    for name, lin in adapter.linears(i).items()
                },
            )

        self._pass(adapter, calib, spec, on_block, f"{self.name} scores (dense)")
