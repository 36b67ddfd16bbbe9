"""Shared drivers that run calibration data through the model and feed linear-input statistics.

`sequential`: block by block on clean inputs; after block i is pruned its *pruned* outputs become
block i+1's inputs, and only one block's activations are resident (Wanda / SparseGPT, method.md §5).
`dense_statistics`: full forward passes of the unpruned model with hooks on every linear, used by
the one-shot sink-aware methods (statistics of the dense model on noised x_t).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn
from tqdm import tqdm

# make_stats(linear) -> collector with .add(x (B, T, d_in), w (B, T) | None)
StatsFactory = Callable[[nn.Linear], object]


class _Weights:
    """The per-token weights of the batch currently in flight (read by the hooks)."""

    value: torch.Tensor | None = None


@contextlib.contextmanager
def collecting(linears: dict[str, nn.Linear], stats: dict[str, object], current: _Weights):
    """Forward hooks that add each linear's input to its collector while the block runs."""

    def hook_for(name: str):
        def hook(_module, inputs, _output):
            stats[name].add(inputs[0], current.value)

        return hook

    handles = [lin.register_forward_hook(hook_for(n)) for n, lin in linears.items()]
    try:
        yield stats
    finally:
        for handle in handles:
            handle.remove()


def _select(linears: dict[str, nn.Linear], only: Iterable[str] | None) -> dict[str, nn.Linear]:
    return linears if only is None else {n: linears[n] for n in only}


@torch.no_grad()
def sequential(
    adapter,
    tokens: torch.Tensor,
    make_stats: StatsFactory,
    on_block: Callable[[int, dict[str, object]], None],
    weights: torch.Tensor | None = None,
    batch_size: int = 8,
    only: Iterable[str] | None = None,
    desc: str = "prune",
) -> None:
    """Collect statistics of block i on its current inputs, call on_block(i, stats) (which prunes
    block i in place), then run the pruned block to produce block i+1's inputs.

    tokens (N, T) clean calibration windows; weights (N, T) optional per-token weights (ω̄).
    """
    device = adapter.device
    starts = range(0, tokens.shape[0], batch_size)
    hs = [adapter.embed(tokens[s : s + batch_size].to(device)) for s in starts]
    ws = [None if weights is None else weights[s : s + batch_size] for s in starts]
    current = _Weights()
    for i in tqdm(range(adapter.n_layers), desc=desc, unit="block"):
        linears = _select(adapter.linears(i), only)
        stats = {n: make_stats(lin) for n, lin in linears.items()}
        with collecting(linears, stats, current):
            for h, w in zip(hs, ws, strict=True):
                current.value = w
                adapter.block_forward(i, h)
        current.value = None
        on_block(i, stats)
        del stats
        for j in range(len(hs)):
            hs[j] = adapter.block_forward(i, hs[j])


@torch.no_grad()
def dense_statistics(
    adapter,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor | None]],
    make_stats: StatsFactory,
    only: Iterable[str] | None = None,
    total: int | None = None,
    desc: str = "statistics",
) -> list[dict[str, object]]:
    """Run (tokens (B, T), weights (B, T) | None) batches through the unpruned model; return one
    {linear name: collector} per block, accumulated over all batches."""
    device = adapter.device
    per_block = [_select(adapter.linears(i), only) for i in range(adapter.n_layers)]
    stats = [{n: make_stats(lin) for n, lin in lins.items()} for lins in per_block]
    current = _Weights()
    with contextlib.ExitStack() as stack:
        for lins, st in zip(per_block, stats, strict=True):
            stack.enter_context(collecting(lins, st, current))
        for tokens, w in tqdm(batches, desc=desc, total=total, unit="batch"):
            current.value = w
            h = adapter.embed(tokens.to(device))
            for i in range(adapter.n_layers):
                h = adapter.block_forward(i, h)
    return stats


def batched(
    tokens: torch.Tensor, weights: torch.Tensor | None, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """(tokens, weights) slices of `batch_size` rows."""
    for s in range(0, tokens.shape[0], batch_size):
        yield tokens[s : s + batch_size], None if weights is None else weights[s : s + batch_size]
