"""`sink` (sink-aware Wanda, method.md §5): one-shot from dense statistics on noised x_t.

For every (sample, step) the dense model runs on x_t; each linear's input rows are scaled by
ω_j = 1 − s_j (the stored sink scores of that x_t) and a_c += ‖(ωX)_c‖₂ (unsquared). S = |W|·a,
pruned per row like Wanda; **[decision]** N:M is honoured.

The statistics do not depend on the sparsity or pattern: `sink_norms` computes them once per
model (rule `sink_norms`, `results/{model}/sinks/norms.safetensors`) and every `sink` / `sink_sp`
variant then only selects masks. Given no precomputed `calib.norms`, the method computes them.
"""

from __future__ import annotations

import math

from .base import (
    CalibrationData,
    PruneSpec,
    PruningMethod,
    Result,
    SinkData,
    SinkNorms,
    mask_linear,
)
from .driver import batched, dense_statistics
from .stats import SinkNormPair
from .wanda import wanda_scores


def sink_norms(
    adapter, sinks: SinkData, batch_size: int = 8, desc: str = "sink norms"
) -> SinkNorms:
    """a_c of every linear from one pass of the dense model over all noised x_t, with the rows
    scaled by ω (weighting `sink`) and unscaled (`none`) (method.md §5)."""
    device = adapter.device
    stats = dense_statistics(
        adapter,
        batched(sinks.tokens, sinks.omega, batch_size),
        lambda lin: SinkNormPair(lin.in_features, device),
        total=math.ceil(sinks.tokens.shape[0] / batch_size),
        desc=desc,
    )
    norms = {
        weighting: [
            {name: pair.by_weighting[weighting].value for name, pair in block.items()}
            for block in stats
        ]
        for weighting in ("sink", "none")
    }
    return SinkNorms(norms, int(sinks.tokens.shape[0]))


def norms_for(adapter, calib: CalibrationData, spec: PruneSpec, method: str) -> SinkNorms:
    """The precomputed `calib.norms`, else one statistics pass over `calib.sinks`."""
    if calib.norms is not None:
        if len(calib.norms.norms["sink"]) != adapter.n_layers:
            raise ValueError(
                f"{method}: sink norms cover {len(calib.norms.norms['sink'])} blocks, the model "
                f"has {adapter.n_layers}"
            )
        return calib.norms
    sinks = PruningMethod.sink_data(calib, method)
    return sink_norms(adapter, sinks, spec.batch_size, desc=f"{method} statistics")


class Sink(PruningMethod):
    name = "sink"
    needs_sinks = True
    uses_norms = True

    def prune(self, adapter, calib: CalibrationData, spec: PruneSpec) -> Result:
        norms = norms_for(adapter, calib, spec, self.name)
        result = Result(spec.keep_masks)
        for i in range(adapter.n_layers):
            block = norms.block(i)
            for name, lin in adapter.linears(i).items():
                scores = wanda_scores(lin.weight, block[name])
                mask_linear(lin, scores, spec, result, f"{i}.{name}", self.scope)
        return result
