"""`sink` (sink-aware Wanda, method.md §5): one-shot from dense statistics on noised x_t.

For every (sample, step) the dense model runs on x_t; each linear's input rows are scaled by
ω_j = 1 − s_j (the stored sink scores of that x_t) and a_c += ‖(ωX)_c‖₂ (unsquared). S = |W|·a,
pruned per row like Wanda; **[decision]** N:M is honoured.

Ablation switches (issue #18): `weighting: none` takes ω ≡ 1; `norm: rms` takes Wanda's
sqrt(mean ‖X_c‖²) over the same inputs instead of the summed norm.

The statistics do not depend on the sparsity or pattern: `sink_norms` computes them once per
model (rule `sink_norms`, `results/{model}/sinks/norms.safetensors`) and every `sink` / `sink_sp`
variant then only selects masks. Given no precomputed `calib.norms`, the method computes them.
"""

from __future__ import annotations

import math

from .base import (
    STORED,
    CalibrationData,
    PruneSpec,
    PruningMethod,
    Result,
    SinkData,
    SinkNorms,
    mask_linear,
)
from .driver import batched, dense_statistics
from .stats import SinkNormSet
from .wanda import wanda_scores


def sink_norms(
    adapter, sinks: SinkData, batch_size: int = 8, desc: str = "sink norms"
) -> SinkNorms:
    """The sums of every linear from one pass of the dense model over all noised x_t: Σ‖(ωX)_c‖₂
    and Σ‖(ωX)_c‖₂² with the rows scaled by ω (`sink`, `sink_sq`) and unscaled (`none`,
    `none_sq`) (method.md §5)."""
    device = adapter.device
    stats = dense_statistics(
        adapter,
        batched(sinks.tokens, sinks.omega, batch_size),
        lambda lin: SinkNormSet(lin.in_features, device),
        total=math.ceil(sinks.tokens.shape[0] / batch_size),
        desc=desc,
    )
    norms = {
        stored: [{name: sums.values[stored] for name, sums in block.items()} for block in stats]
        for stored in STORED
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

    def prune(self, adapter, calib: CalibrationData, spec: PruneSpec, alloc=None) -> Result:
        result = Result(spec.keep_masks)
        norms = norms_for(adapter, calib, spec, self.name)
        for i in range(adapter.n_layers):
            block = norms.block(i, spec.weighting, spec.norm)
            for name, lin in adapter.linears(i).items():
                key = f"{i}.{name}"
                scores = wanda_scores(lin.weight, block[name])
                count = alloc.count(key) if alloc else None
                mask_linear(lin, scores, spec, result, key, self.scope, count)
        return result

    def block_scores(self, adapter, calib: CalibrationData, spec: PruneSpec, visit) -> None:
        """S = |W|·a of every block from the dense statistics (no forward)."""
        norms = norms_for(adapter, calib, spec, self.name)
        for i in range(adapter.n_layers):
            block = norms.block(i, spec.weighting, spec.norm)
            lins = adapter.linears(i)
            visit(i, {n: wanda_scores(lin.weight, block[n]) for n, lin in lins.items()})
