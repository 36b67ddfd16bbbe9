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

    def inputs(self, adapter, calib: CalibrationData, spec: PruneSpec) -> torch.Tensor:
        """The calibration windows the sequential pass runs: the clean ones."""
        return calib.tokens

    def _pass(self, adapter, tokens, spec: PruneSpec, on_block, desc: str) -> None:
        device = adapter.device
        sequential(
            adapter,
            tokens,
            lambda lin: MeanSquaredNorm(lin.in_features, device),
            on_block,
            batch_size=spec.batch_size,
            desc=desc,
        )

    def prune(self, adapter, calib: CalibrationData, spec: PruneSpec, alloc=None) -> Result:
        result = Result(spec.keep_masks)

        def on_block(i: int, stats: dict) -> None:
            for name, lin in adapter.linears(i).items():
                key = f"{i}.{name}"
                scores = wanda_scores(lin.weight, stats[name].norm)
                count = alloc.count(key) if alloc else None
                mask_linear(lin, scores, spec, result, key, self.scope, count)

        self._pass(adapter, self.inputs(adapter, calib, spec), spec, on_block, self.name)
        return result

    def block_scores(self, adapter, calib: CalibrationData, spec: PruneSpec, visit) -> None:
        """S = |W|·sqrt(r) of every block, r from the *dense* model's inputs (nothing pruned)."""

        def on_block(i: int, stats: dict) -> None:
            lins = adapter.linears(i)
            visit(i, {n: wanda_scores(lin.weight, stats[n].norm) for n, lin in lins.items()})

        tokens = self.inputs(adapter, calib, spec)
        self._pass(adapter, tokens, spec, on_block, f"{self.name} scores (dense)")
