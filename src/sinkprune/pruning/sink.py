"""`sink` (sink-aware Wanda, method.md §5): one-shot from dense statistics on noised x_t.

For every (sample, step) the dense model runs on x_t; each linear's input rows are scaled by
ω_j = 1 − s_j (the stored sink scores of that x_t) and a_c += ‖(ωX)_c‖₂ (unsquared). S = |W|·a,
pruned per row like Wanda; **[decision]** N:M is honoured.
"""

from __future__ import annotations

import math

from .base import CalibrationData, PruneSpec, PruningMethod, Result, mask_linear
from .driver import batched, dense_statistics
from .stats import SummedNorm
from .wanda import wanda_scores


def sink_statistics(adapter, calib: CalibrationData, spec: PruneSpec, method: str, only=None):
    """Per block {linear: SummedNorm} from the dense model on every noised x_t, rows scaled by ω."""
    sinks = PruningMethod.sink_data(calib, method)
    device = adapter.device
    return dense_statistics(
        adapter,
        batched(sinks.tokens, sinks.omega, spec.batch_size),
        lambda lin: SummedNorm(lin.in_features, device),
        only=only,
        total=math.ceil(sinks.tokens.shape[0] / spec.batch_size),
        desc=f"{method} statistics",
    )


class Sink(PruningMethod):
    name = "sink"
    needs_sinks = True

    def prune(self, adapter, calib: CalibrationData, spec: PruneSpec) -> Result:
        stats = sink_statistics(adapter, calib, spec, self.name)
        result = Result(spec.keep_masks)
        for i, per_linear in enumerate(stats):
            for name, lin in adapter.linears(i).items():
                scores = wanda_scores(lin.weight, per_linear[name].norm)
                mask_linear(lin, scores, spec, result, f"{i}.{name}", self.scope)
        return result
