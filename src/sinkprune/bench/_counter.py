"""Count model forwards with a hook, not a formula (benchmark `sweep_cost`, tests).

A global module forward hook (torch.nn.modules.module.register_module_forward_hook) sees every
transformer block of every sinkprune model in the process, also those a stage function loads
from disk itself. Each call of a block on hidden states (B, T, d) adds B rows and B·T tokens; a
*forward* is one window through all L blocks, so forwards = block rows / L. Sequential drivers
(Wanda, SparseGPT) that run block by block are counted the same way.
"""

from __future__ import annotations

import torch
from torch import nn


def block_types() -> tuple[type[nn.Module], ...]:
    from sinkprune.models.dream import DreamBlock
    from sinkprune.models.llada import LLaDABlock

    return (LLaDABlock, DreamBlock)


class ForwardCounter:
    """Context manager: block calls, rows and tokens seen while it is active."""

    def __init__(self):
        self.calls = 0
        self.rows = 0
        self.tokens = 0
        self._types = block_types()
        self._handle = None

    def _hook(self, module: nn.Module, args, _output) -> None:
        if isinstance(module, self._types):
            h = args[0]
            self.calls += 1
            self.rows += int(h.shape[0])
            self.tokens += int(h.shape[0] * h.shape[1])

    def __enter__(self) -> ForwardCounter:
        self._handle = torch.nn.modules.module.register_module_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()
        self._handle = None

    def forwards(self, n_layers: int) -> float:
        """Full-model forwards of one window: block rows / n_layers."""
        return self.rows / n_layers
