"""`magnitude` (method.md §5): score |W|; per-matrix threshold, or the n lowest per N:M group."""

from __future__ import annotations

import torch
from tqdm import tqdm

from .base import CalibrationData, PruneSpec, PruningMethod, Result, mask_linear


class Magnitude(PruningMethod):
    name = "magnitude"
    scope = "matrix"

    @torch.no_grad()
    def prune(self, adapter, calib: CalibrationData, spec: PruneSpec, alloc=None) -> Result:
        result = Result(spec.keep_masks)
        for i in tqdm(range(adapter.n_layers), desc=self.name, unit="block"):
            for name, lin in adapter.linears(i).items():
                key = f"{i}.{name}"
                scores = lin.weight.detach().abs().float()
                count = alloc.count(key) if alloc else None
                mask_linear(lin, scores, spec, result, key, self.scope, count)
        return result

    def block_scores(self, adapter, calib: CalibrationData, spec: PruneSpec, visit) -> None:
        for i in range(adapter.n_layers):
            lins = adapter.linears(i)
            visit(i, {n: lin.weight.detach().abs().float() for n, lin in lins.items()})
