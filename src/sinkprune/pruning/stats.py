"""Per-linear input statistics accumulated over calibration batches (method.md §5).

Every collector gets the linear's input X (B, T, d_in) and optional per-token weights w (B, T)
(ω for `sink`, ω̄ for `sink_sgpt`); a "sample" is one row of the batch.
"""

from __future__ import annotations

import math

import torch


def _rows(x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """X as fp32 (B, T, d), each token row scaled by its weight when given.

    The scaling runs in X's dtype with the weights cast to it (bf16 on GPU), then the product is
    cast to fp32: the release's order for ω (sink) and ω̄ (sink_sgpt).
    """
    x = x.detach()
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if w is not None:
        x = x * w.to(x.device, x.dtype).unsqueeze(-1)
    return x.float()


class MeanSquaredNorm:
    """Wanda's r_c = mean over samples of ‖X_c‖² (norm over the sample's tokens)."""

    def __init__(self, d_in: int, device=None):
        self.value = torch.zeros(d_in, dtype=torch.float32, device=device)
        self.nsamples = 0

    def add(self, x: torch.Tensor, w: torch.Tensor | None = None) -> None:
        x = _rows(x, w)
        b = x.shape[0]
        total = self.value * self.nsamples + x.pow(2).sum(dim=(0, 1)).to(self.value.device)
        self.nsamples += b
        self.value = total / self.nsamples

    @property
    def norm(self) -> torch.Tensor:
        """‖X_c‖ used by the score: sqrt(r_c)."""
        return self.value.sqrt()


class SummedNorm:
    """Sink's a_c = Σ over samples (and timesteps) of the unsquared ‖(ωX)_c‖₂."""

    def __init__(self, d_in: int, device=None):
        self.value = torch.zeros(d_in, dtype=torch.float32, device=device)
        self.nsamples = 0

    def add(self, x: torch.Tensor, w: torch.Tensor | None = None) -> None:
        x = _rows(x, w)
        self.value += torch.linalg.vector_norm(x, dim=1).sum(dim=0).to(self.value.device)
        self.nsamples += x.shape[0]

    @property
    def norm(self) -> torch.Tensor:
        return self.value


class SummedSquaredNorm:
    """Σ over samples (and timesteps) of ‖(ωX)_c‖₂²: Wanda's r_c times the number of inputs."""

    def __init__(self, d_in: int, device=None):
        self.value = torch.zeros(d_in, dtype=torch.float32, device=device)
        self.nsamples = 0

    def add(self, x: torch.Tensor, w: torch.Tensor | None = None) -> None:
        x = _rows(x, w)
        self.value += x.pow(2).sum(dim=(0, 1)).to(self.value.device)
        self.nsamples += x.shape[0]


class SinkNormSet:
    """The sums of `sink` / `sink_sp` from the same inputs (sinkprune.pruning.base.STORED):
    Σ‖(ωX)_c‖ (`sink`), Σ‖X_c‖ (`none`, ω ≡ 1) and their squared-norm sums (`sink_sq`,
    `none_sq`). One statistics pass serves `sink`, `sink_sp` and their ablation rungs."""

    def __init__(self, d_in: int, device=None):
        self.sums = {
            "sink": SummedNorm(d_in, device),
            "none": SummedNorm(d_in, device),
            "sink_sq": SummedSquaredNorm(d_in, device),
            "none_sq": SummedSquaredNorm(d_in, device),
        }

    def add(self, x: torch.Tensor, w: torch.Tensor | None = None) -> None:
        plain = _rows(x, None)
        weighted = _rows(plain, w)  # the same product as _rows(x, w): bit-identical sums
        for key, stat in self.sums.items():
            stat.add(weighted if key.startswith("sink") else plain)

    @property
    def values(self) -> dict[str, torch.Tensor]:
        return {key: stat.value for key, stat in self.sums.items()}


class Hessian:
    """SparseGPT's H = (2/N) Σ (wX)ᵀ(wX) in fp32, N = number of samples (running average)."""

    def __init__(self, d_in: int, device=None):
        self.value = torch.zeros(d_in, d_in, dtype=torch.float32, device=device)
        self.nsamples = 0

    def add(self, x: torch.Tensor, w: torch.Tensor | None = None) -> None:
        x = _rows(x, w)
        b = x.shape[0]
        self.value *= self.nsamples / (self.nsamples + b)
        self.nsamples += b
        flat = math.sqrt(2 / self.nsamples) * x.reshape(-1, x.shape[-1]).to(self.value.device)
        self.value += flat.T @ flat
