"""Structured pruning `wanda_sp` / `sink_sp` (method.md §5, **[decision]**).

Units are attention heads (for GQA: whole KV groups, i.e. one k/v head and its query heads) and
MLP channels. Importance of a unit = Σ |W|·‖X_c‖ over the columns of the projection consuming it
(attn_out / o_proj for heads, ff_out / down_proj for channels). `wanda_sp` takes ‖X‖ = sqrt(r)
from clean activations, sequentially (removed units are masked before the next block runs);
`sink_sp` takes the ω-weighted summed norm a from the dense model on noised x_t, one-shot (the
attn_out / ff_out entries of the same statistics as `sink`: precomputed once per model).
The lowest ⌊ratio·n⌋ heads and channels of every layer are removed physically.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import CalibrationData, PruneSpec, PruningMethod, Result
from .driver import sequential
from .sink import norms_for
from .stats import MeanSquaredNorm


def n_removed(ratio: float, n_units: int) -> int:
    """⌊ratio·n⌋, keeping at least one unit."""
    return min(int(ratio * n_units), n_units - 1)


def unit_importance(
    adapter, i: int, o_norm: torch.Tensor, down_norm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(importance per KV group (n_kv_heads,), importance per MLP channel (mlp,)) of block i."""
    s, lins = adapter.structure, adapter.linears(i)
    o = lins[s["o"]].weight.detach().abs().float()
    cols = (o * o_norm.to(o.device, torch.float32).unsqueeze(0)).sum(dim=0)
    heads = cols.view(adapter.n_kv_heads, -1).sum(dim=1)  # a group's query heads are contiguous
    down = lins[s["down"]].weight.detach().abs().float()
    channels = (down * down_norm.to(down.device, torch.float32).unsqueeze(0)).sum(dim=0)
    return heads, channels


def choose_units(adapter, i: int, o_norm, down_norm, ratio: float) -> dict[str, list[int]]:
    """The lowest-importance KV groups and MLP channels of block i (stable order), sorted."""
    heads, channels = unit_importance(adapter, i, o_norm, down_norm)
    kh, kc = n_removed(ratio, heads.numel()), n_removed(ratio, channels.numel())
    drop_h = torch.sort(heads, stable=True).indices[:kh]
    drop_c = torch.sort(channels, stable=True).indices[:kc]
    return {"heads": sorted(drop_h.tolist()), "channels": sorted(drop_c.tolist())}


def _head_columns(adapter, groups: list[int]) -> torch.Tensor:
    """Column indices of attn_out (= row indices of q_proj) belonging to the given KV groups."""
    width = adapter.n_heads // adapter.n_kv_heads * adapter.head_dim
    idx = [torch.arange(g * width, (g + 1) * width) for g in groups]
    return torch.cat(idx) if idx else torch.zeros(0, dtype=torch.long)


def _kv_rows(adapter, groups: list[int]) -> torch.Tensor:
    hd = adapter.head_dim
    idx = [torch.arange(g * hd, (g + 1) * hd) for g in groups]
    return torch.cat(idx) if idx else torch.zeros(0, dtype=torch.long)


@torch.no_grad()
def mask_units(adapter, i: int, removed: dict[str, list[int]]) -> None:
    """Zero the consumer columns of the removed units: block i then computes what the physically
    smaller block will compute (used between blocks by the sequential `wanda_sp`)."""
    s, lins = adapter.structure, adapter.linears(i)
    o, down = lins[s["o"]].weight, lins[s["down"]].weight
    o[:, _head_columns(adapter, removed["heads"]).to(o.device)] = 0
    down[:, torch.tensor(removed["channels"], dtype=torch.long, device=down.device)] = 0


def _sliced(lin: nn.Linear, rows: torch.Tensor | None, cols: torch.Tensor | None) -> nn.Linear:
    W = lin.weight.detach()
    b = lin.bias.detach() if lin.bias is not None else None
    if rows is not None:
        rows = rows.to(W.device)
        W = W.index_select(0, rows)
        b = b.index_select(0, rows) if b is not None else None
    if cols is not None:
        W = W.index_select(1, cols.to(W.device))
    new = nn.Linear(W.shape[1], W.shape[0], bias=b is not None, device=W.device, dtype=W.dtype)
    new.weight.data.copy_(W)
    if b is not None:
        new.bias.data.copy_(b)
    return new


def _replace(block: nn.Module, name: str, new: nn.Linear) -> None:
    parent, _, child = name.rpartition(".")
    setattr(block.get_submodule(parent) if parent else block, child, new)


def kept_units(n: int, removed: list[int]) -> torch.Tensor:
    """The indices 0..n−1 not in `removed`, ascending (one O(n) pass: boolean mask)."""
    keep = torch.ones(n, dtype=torch.bool)
    keep[torch.as_tensor(removed, dtype=torch.long)] = False
    return keep.nonzero().squeeze(1)


@torch.no_grad()
def remove_units(adapter, removed: dict[int, dict[str, list[int]]]) -> None:
    """Physically slice q/k/v/o and gate/up/down (biases included) of every block and record the
    new head counts / MLP width in the config. Every layer must remove the same number of units."""
    counts = {(len(r["heads"]), len(r["channels"])) for r in removed.values()}
    if len(removed) != adapter.n_layers or len(counts) != 1:
        raise ValueError(f"structured removal must cover every layer equally, got {counts}")
    n_heads, n_kv, mlp = adapter.n_heads, adapter.n_kv_heads, adapter.mlp_hidden_size
    rep = n_heads // n_kv
    s = adapter.structure
    for i, r in removed.items():
        keep_g = kept_units(n_kv, r["heads"]).tolist()
        keep_c = kept_units(mlp, r["channels"])
        q_rows, kv_rows = _head_columns(adapter, keep_g), _kv_rows(adapter, keep_g)
        block, lins = adapter.blocks[i], adapter.linears(i)
        _replace(block, s["q"], _sliced(lins[s["q"]], q_rows, None))
        _replace(block, s["k"], _sliced(lins[s["k"]], kv_rows, None))
        _replace(block, s["v"], _sliced(lins[s["v"]], kv_rows, None))
        _replace(block, s["o"], _sliced(lins[s["o"]], None, q_rows))
        _replace(block, s["gate"], _sliced(lins[s["gate"]], keep_c, None))
        _replace(block, s["up"], _sliced(lins[s["up"]], keep_c, None))
        _replace(block, s["down"], _sliced(lins[s["down"]], None, keep_c))
    kh, kc = counts.pop()
    adapter.set_shape((n_kv - kh) * rep, n_kv - kh, mlp - kc)


def _record(result: Result, adapter, before: dict[str, int]) -> None:
    """Per-linear accounting: pruned = parameters removed, numel = parameters before."""
    for i in range(adapter.n_layers):
        for name, lin in adapter.linears(i).items():
            key = f"{i}.{name}"
            result.numel[key] = before[key]
            result.pruned[key] = before[key] - lin.weight.numel()


def _sizes(adapter) -> dict[str, int]:
    return {
        f"{i}.{n}": lin.weight.numel()
        for i in range(adapter.n_layers)
        for n, lin in adapter.linears(i).items()
    }


class WandaSP(PruningMethod):
    name = "wanda_sp"
    structured = True

    def prune(self, adapter, calib: CalibrationData, spec: PruneSpec, alloc=None) -> Result:
        result, before, s = Result(spec.keep_masks), _sizes(adapter), adapter.structure
        device = adapter.device

        def on_block(i: int, stats: dict) -> None:
            removed = choose_units(
                adapter, i, stats[s["o"]].norm, stats[s["down"]].norm, spec.sparsity
            )
            mask_units(adapter, i, removed)
            result.removed[i] = removed

        sequential(
            adapter,
            calib.tokens,
            lambda lin: MeanSquaredNorm(lin.in_features, device),
            on_block,
            batch_size=spec.batch_size,
            only=[s["o"], s["down"]],
            desc=self.name,
        )
        remove_units(adapter, result.removed)
        _record(result, adapter, before)
        return result


class SinkSP(PruningMethod):
    name = "sink_sp"
    structured = True
    needs_sinks = True
    uses_norms = True

    def prune(self, adapter, calib: CalibrationData, spec: PruneSpec, alloc=None) -> Result:
        result, before, s = Result(spec.keep_masks), _sizes(adapter), adapter.structure
        norms = norms_for(adapter, calib, spec, self.name)
        for i in range(adapter.n_layers):
            block = norms.block(i, spec.weighting, spec.norm)
            result.removed[i] = choose_units(
                adapter, i, block[s["o"]], block[s["down"]], spec.sparsity
            )
        remove_units(adapter, result.removed)
        _record(result, adapter, before)
        return result
