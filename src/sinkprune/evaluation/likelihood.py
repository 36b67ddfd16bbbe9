"""Monte Carlo log-likelihood of a continuation under a masked diffusion LM (method.md §7).

The estimator is the LLaDA release's: per batch of b rows draw k ~ U{1..ℓ}; row r masks
x_r = ((round(k + r·ℓ/b) − 1) mod ℓ) + 1 random continuation positions (the context is never
masked) and scores loss_r = Σ_masked CE / (x_r/ℓ); the estimate is −mean over all rows.

**[decision]** `round` is round-half-up (⌊·+½⌋), not torch's half-to-even: with an integer k,
⌊k + r·ℓ/b + ½⌋ = k + ⌊r·ℓ/b + ½⌋, so every row's count is marginally uniform on 1..ℓ and the
estimate is an unbiased estimate of the masked-diffusion bound. Half-to-even rounding makes some
rows' counts non-uniform when r·ℓ/b ends in .5 (e.g. ℓ=3, b=2).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

LogitsFn = Callable[[torch.Tensor], torch.Tensor]
"""(B, T) token ids -> (B, T, V) logits where [:, j] predicts token j."""


def request_seed(seed: int, *parts: Sequence[int]) -> int:
    """A 63-bit seed from `seed` and token id sequences: the same request gets the same draws
    whatever the order or batching of the requests around it."""
    h = hashlib.sha256(str(int(seed)).encode())
    for p in parts:
        h.update(b"|" + ",".join(str(int(t)) for t in p).encode())
    return int.from_bytes(h.digest()[:8], "little") & ((1 << 63) - 1)


def mask_counts(k: int, length: int, batch: int) -> list[int]:
    """Stratified mask counts x_r = ((⌊k + r·ℓ/b + ½⌋ − 1) mod ℓ) + 1 for r = 0..b−1."""
    return [((math.floor(k + r * length / batch + 0.5) - 1) % length) + 1 for r in range(batch)]


def cfg_logits(
    logits_fn: LogitsFn, x: torch.Tensor, context_len: int, mask_id: int, cfg: float
) -> torch.Tensor:
    """Logits of `x`; with cfg > 0 also run with the whole context masked (u) and return
    u + (cfg + 1)(c − u) (classifier-free guidance, method.md §7)."""
    if cfg <= 0 or context_len == 0:
        return logits_fn(x)
    un = x.clone()
    un[:, :context_len] = mask_id
    both = logits_fn(torch.cat([x, un]))
    c, u = both.chunk(2, dim=0)
    return u + (cfg + 1.0) * (c - u)


def noised_batch(
    seq: torch.Tensor, context_len: int, counts: list[int], mask_id: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of `seq` with counts[r] random continuation positions replaced by `mask_id`.

    Returns (noised (b, T), is_mask (b, T) bool). Context positions are never masked.
    """
    length = seq.numel() - context_len
    b = len(counts)
    is_mask = torch.zeros(b, seq.numel(), dtype=torch.bool)
    for r, x in enumerate(counts):
        pos = torch.randperm(length, generator=gen)[:x] + context_len
        is_mask[r, pos] = True
    noised = seq.unsqueeze(0).repeat(b, 1)
    noised[is_mask] = mask_id
    return noised, is_mask


@torch.no_grad()
def mc_loglikelihood(
    logits_fn: LogitsFn,
    context: Sequence[int],
    continuation: Sequence[int],
    mask_id: int,
    mc_num: int = 128,
    batch_size: int = 32,
    cfg: float = 0.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> float:
    """MC estimate of log p(continuation | context) (method.md §7).

    `mc_num` rows in batches of min(batch_size, mc_num); a last partial batch is stratified over
    its own size. Randomness comes from a generator seeded by `request_seed(seed, context,
    continuation)`, so the result does not depend on request order.
    """
    if len(continuation) == 0:
        return 0.0
    gen = torch.Generator().manual_seed(request_seed(seed, context, continuation))
    seq = torch.tensor(list(context) + list(continuation), dtype=torch.long)
    ctx, length = len(context), len(continuation)
    b = max(1, min(batch_size, mc_num))
    total, done = 0.0, 0
    while done < mc_num:
        rows = min(b, mc_num - done)
        k = int(torch.randint(1, length + 1, (), generator=gen))
        counts = mask_counts(k, length, rows)
        noised, is_mask = noised_batch(seq, ctx, counts, mask_id, gen)
        logits = cfg_logits(logits_fn, noised.to(device), ctx, mask_id, cfg)
        target = seq.unsqueeze(0).expand(rows, -1)[is_mask]
        sel = is_mask.to(logits.device)  # only masked rows of the (b, T, V) logits go to fp32
        ce = F.cross_entropy(logits[sel].float(), target.to(logits.device), reduction="none")
        ce = ce.cpu()
        weight = torch.tensor(counts, dtype=torch.float32) / length  # x_r / ℓ per row
        row_of = is_mask.nonzero()[:, 0]
        total += float((ce / weight[row_of]).sum())
        done += rows
    return -total / mc_num


@torch.no_grad()
def ar_loglikelihood(
    logits_fn: LogitsFn,
    context: Sequence[int],
    continuation: Sequence[int],
    device: str | torch.device = "cpu",
) -> tuple[float, bool]:
    """Exact log p(continuation | context) and greedy flag for a causal LM whose logits at i
    predict token i+1. Needs a non-empty context (lm-eval supplies a prefix token)."""
    if len(context) == 0:
        raise ValueError("ar_loglikelihood needs at least one context token")
    seq = torch.tensor([list(context) + list(continuation)], dtype=torch.long)
    logits = logits_fn(seq[:, :-1].to(device)).float().cpu()[0, len(context) - 1 :]
    target = seq[0, len(context) :]
    logp = torch.log_softmax(logits, dim=-1)
    ll = float(logp.gather(1, target[:, None]).sum())
    return ll, bool((logp.argmax(-1) == target).all())
