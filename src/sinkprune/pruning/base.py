"""The one interface every pruning method implements, and the data it receives and returns.

A method gets the model adapter, the calibration data (clean windows, plus noised x_t and ω for
sink-aware methods) and a PruneSpec; it prunes the model's block linears in place (masking and,
for SparseGPT, updating weights) and returns a Result with the masks and their accounting.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
import torch

from .select import parse_nm


@dataclass(frozen=True)
class PruneSpec:
    """What to prune: method, sparsity p (structured: the removed share of units), type, knobs."""

    method: str
    sparsity: float = 0.0
    sparsity_type: str = "unstructured"
    blocksize: int = 128
    percdamp: float = 0.01
    batch_size: int = 8
    seed: int = 0
    keep_masks: bool = True
    # per-variant options (sinkprune.config.VARIANT_OPTIONS, config/README.md#pruning)
    noise: str = "random"  # dwanda: random t per copy, or the sink stage's grid of x_t
    weighting: str = "sink"  # sink, sink_sgpt, sink_sp: rows scaled by ω, or ω ≡ 1 ("none")
    norm: str = "summed"  # sink, sink_sp: Σ‖X_c‖ ("summed") or sqrt(mean ‖X_c‖²) ("rms")
    allocation: str = "uniform"  # layer-wise sparsity: uniform, owl, deeper, earlier
    # noising of dwanda (pruning.dwanda, diffusion.eps, calibration.seed, the timestep grid)
    mask_repeats: int = 8
    t_min: float = 0.0
    t_max: float = 1.0
    eps: float = 1e-3
    noise_seed: int = 0
    grid: tuple[tuple[int, float], ...] = ()
    # allocation settings (pruning.owl, pruning.schedule)
    owl_m: float = 5.0
    owl_lambda: float = 0.08
    schedule_epsilon: float = 0.08

    @property
    def nm(self) -> tuple[int, int] | None:
        return None if self.sparsity_type == "structured" else parse_nm(self.sparsity_type)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SinkData:
    """Noised calibration inputs and their down-weighting factors (method.md §4–5).

    tokens (K, T): x_t for every (sample, step) in `keys`; omega (K, T): ω = 1 − s of that x_t;
    mean_omega (N, T): ω̄ per clean sample, rows aligned with CalibrationData.sample_ids.
    """

    tokens: torch.Tensor
    omega: torch.Tensor
    keys: list[tuple[int, int]]
    mean_omega: torch.Tensor


#: Row weightings of the norms of `sink` / `sink_sp`: ω = 1 − s (the method) or ω ≡ 1.
WEIGHTINGS = ("sink", "none")
#: How the per-input norms are combined: Σ ‖X_c‖ (the method) or Wanda's sqrt(mean ‖X_c‖²).
NORMS = ("summed", "rms")
#: The stored sums: `{weighting}` = Σ ‖(ωX)_c‖₂, `{weighting}_sq` = Σ ‖(ωX)_c‖₂².
STORED = ("sink", "none", "sink_sq", "none_sq")


@dataclass
class SinkNorms:
    """The column statistics of `sink` / `sink_sp` (method.md §5), from one dense pass.

    norms[set][i][linear] is a (d_in,) fp32 vector for block i, summed over the `n_inputs` noised
    inputs: set `sink` = Σ ‖(ωX)_c‖₂ (rows scaled by ω), `none` the same with ω ≡ 1, `sink_sq` /
    `none_sq` the sums of the squared norms. Computed by `sinkprune.pruning.sink.sink_norms` (or
    read from `results/{model}/sinks/norms.safetensors`, `sinkprune.sink_norms`).
    """

    norms: dict[str, list[dict[str, torch.Tensor]]]
    n_inputs: int

    def block(
        self, i: int, weighting: str = "sink", norm: str = "summed"
    ) -> dict[str, torch.Tensor]:
        """Block i's norm vectors: a_c = Σ ‖(ωX)_c‖ (`summed`, method.md §5) or
        sqrt(Σ ‖(ωX)_c‖² / n_inputs) (`rms`, Wanda's statistic over the same inputs)."""
        if weighting not in WEIGHTINGS or norm not in NORMS:
            raise ValueError(
                f"sink norms: weighting {weighting!r} / norm {norm!r}; expected one of "
                f"{WEIGHTINGS} / {NORMS}"
            )
        key = weighting if norm == "summed" else f"{weighting}_sq"
        if key not in self.norms:
            raise ValueError(
                f"sink norms: {key!r} not stored (have {sorted(self.norms)}); rerun rule sink_norms"
            )
        block = self.norms[key][i]
        if norm == "summed":
            return block
        return {name: (v / self.n_inputs).sqrt() for name, v in block.items()}


@dataclass
class CalibrationData:
    """Clean calibration windows (N, T) with their sample ids; `sinks` for sink-aware methods;
    `norms` (precomputed statistics of `sink` / `sink_sp`) spare those methods their forwards."""

    sample_ids: list[int]
    tokens: torch.Tensor
    sinks: SinkData | None = None
    norms: SinkNorms | None = None


def mask_digest(mask: torch.Tensor) -> str:
    """sha256 of a bool mask (bit-packed, row-major): equal digests ⇔ identical masks."""
    bits = np.packbits(mask.detach().cpu().numpy().astype(bool).reshape(-1))
    return hashlib.sha256(bits.tobytes() + str(tuple(mask.shape)).encode()).hexdigest()


@dataclass
class Result:
    """Per-linear pruned counts (key "{layer}.{linear}"), mask digests, optional masks,
    structured removals {layer: {"heads": [...], "channels": [...]}}, per-linear extras and the
    layer-wise allocation (Allocation.as_report())."""

    keep_masks: bool = True
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    pruned: dict[str, int] = field(default_factory=dict)
    numel: dict[str, int] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    removed: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    info: dict[str, dict] = field(default_factory=dict)
    allocation: dict = field(default_factory=dict)

    def record(self, key: str, mask: torch.Tensor) -> None:
        self.pruned[key] = int(mask.sum().item())
        self.numel[key] = mask.numel()
        self.digests[key] = mask_digest(mask)
        if self.keep_masks:
            self.masks[key] = mask.detach().cpu()

    def sparsity(self) -> dict[str, float]:
        """Achieved sparsity (pruned share) per linear."""
        return {k: self.pruned[k] / self.numel[k] for k in self.pruned}

    def overall_sparsity(self) -> float:
        total = sum(self.numel.values())
        return sum(self.pruned.values()) / total if total else 0.0

    def layer_sparsity(self) -> dict[str, float]:
        """Achieved sparsity per block (pruned share of its linears' weights), by block index."""
        pruned: dict[str, int] = {}
        numel: dict[str, int] = {}
        for key, n in self.numel.items():
            block = key.split(".", 1)[0]
            pruned[block] = pruned.get(block, 0) + self.pruned[key]
            numel[block] = numel.get(block, 0) + n
        return {b: pruned[b] / numel[b] for b in sorted(numel, key=int)}


def apply_mask(linear: torch.nn.Linear, mask: torch.Tensor) -> None:
    """Zero the pruned weights of a linear in place."""
    linear.weight.data.masked_fill_(mask.to(linear.weight.device), 0)


class PruningMethod:
    """Base class: `prune(adapter, calib, spec) -> Result`, pruning the model in place."""

    name: ClassVar[str] = ""
    needs_sinks: ClassVar[bool] = False
    #: statistics precomputed once per model (rule sink_norms) replace the method's forwards
    uses_norms: ClassVar[bool] = False
    structured: ClassVar[bool] = False
    #: 'row' (Wanda's per-output comparison group) or 'matrix' (magnitude's global threshold)
    scope: ClassVar[str] = "row"

    def prune(self, adapter, calib: CalibrationData, spec: PruneSpec, alloc=None) -> Result:
        """Prune in place; `alloc` (sinkprune.pruning.allocation.Allocation, None = uniform)
        gives the exact number of weights to prune per linear when the allocation is not
        uniform."""
        raise NotImplementedError

    def block_scores(self, adapter, calib: CalibrationData, spec: PruneSpec, visit) -> None:
        """Call visit(i, {linear: importance scores}) for every block, scored on the *dense*
        model as the method scores weights (for OWL, which needs every layer's scores before
        block 0 is pruned)."""
        raise NotImplementedError(f"method {self.name!r} has no per-weight importance scores")

    @staticmethod
    def sink_data(calib: CalibrationData, method: str) -> SinkData:
        if calib.sinks is None:
            raise ValueError(
                f"method '{method}' needs sink scores (results/{{model}}/sinks/scores.parquet); "
                "none were given"
            )
        return calib.sinks


def mask_linear(
    linear: torch.nn.Linear,
    scores: torch.Tensor,
    spec: PruneSpec,
    result: Result,
    key: str,
    scope: str = "row",
    count: int | None = None,
) -> torch.Tensor:
    """Select the mask from `scores` (unstructured per `scope`, or N:M; exactly `count` weights
    when an allocation gives one), zero it, record it."""
    from .select import select_mask

    mask = select_mask(scores, spec.sparsity, spec.sparsity_type, scope, count)
    apply_mask(linear, mask)
    result.record(key, mask)
    return mask
