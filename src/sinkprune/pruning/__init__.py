"""Pruning engine (method.md §5): one module per method behind `PruningMethod.prune`.

`prune_model` prunes an in-memory model; `prune_checkpoint` (sinkprune.pruning.io) is the
file-to-file entry of the `prune` rule.
"""

from __future__ import annotations

import torch

from .allocation import Allocation, allocate
from .base import CalibrationData, PruneSpec, PruningMethod, Result, SinkData
from .dwanda import DWanda
from .magnitude import Magnitude
from .sink import Sink
from .sink_sgpt import SinkSGPT
from .sparsegpt import SparseGPT
from .structured import SinkSP, WandaSP
from .wanda import Wanda

METHODS: dict[str, type[PruningMethod]] = {
    cls.name: cls for cls in (Magnitude, Wanda, DWanda, SparseGPT, Sink, SinkSGPT, WandaSP, SinkSP)
}

__all__ = [
    "METHODS",
    "Allocation",
    "CalibrationData",
    "PruneSpec",
    "PruningMethod",
    "Result",
    "SinkData",
    "get_method",
    "prune_checkpoint",
    "prune_model",
]


def get_method(name: str) -> PruningMethod:
    """The method registered under `name` (a `pruning.grid[].methods` entry)."""
    if name not in METHODS:
        raise ValueError(f"pruning method {name!r} is unknown (known: {sorted(METHODS)})")
    return METHODS[name]()


def prune_model(adapter, calib: CalibrationData, spec: PruneSpec) -> Result:
    """Prune the adapter's model in place with `spec.method` and `spec.allocation` (the layer-wise
    plan is made on the dense model first); `dense` returns an empty Result."""
    if spec.method == "dense":
        return Result(spec.keep_masks)
    method = get_method(spec.method)
    if method.structured != (spec.sparsity_type == "structured"):
        raise ValueError(
            f"method {spec.method!r} does not take sparsity_type {spec.sparsity_type!r}"
        )
    torch.manual_seed(spec.seed)
    adapter.model.eval()
    with torch.no_grad():
        alloc = allocate(method, adapter, calib, spec)
        result = method.prune(adapter, calib, spec, alloc)
    result.allocation = alloc.as_report()
    return result


def prune_checkpoint(*args, **kwargs):
    """See sinkprune.pruning.io.prune_checkpoint."""
    from .io import prune_checkpoint as run

    return run(*args, **kwargs)
