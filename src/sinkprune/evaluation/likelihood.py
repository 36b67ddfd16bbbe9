"""Monte Carlo log-likelihood of a continuation under a masked diffusion LM (method.md §7).

The estimator is the LLaDA release's: per batch of b rows draw k ~ U{1..ℓ}; row r masks
x_r = ((round(k + r·ℓ/b) − 1) mod ℓ) + 1 random continuation positions (the context is never
masked) and scores loss_r = Σ_masked CE / (x_r/ℓ); the estimate is −mean over all rows.

**[decision]** `round` is round-half-up (⌊·+½⌋), not torch's half-to-even: with an integer k,
⌊k + r·ℓ/b + ½⌋ = k + ⌊r·ℓ/b + ½⌋, so every row's count is marginally uniform on 1..ℓ and the
estimate is an unbiased estimate of the masked-diffusion bound. Half-to-even rounding makes some
rows' counts non-uniform when r·ℓ/b ends in .5 (e.g. ℓ=3, b=2).

`mc_loglikelihood` is that estimator for one request (the standard protocol). `estimate` scores
many requests together with the options of `Estimator` (docs/decisions.md "Evaluation"):

- **common random numbers** (`crn`): the answer choices of one item (task, doc_id) share each
  batch's noise level u ~ U[0, 1) (k = ⌊u·ℓ⌋ + 1) and, where lengths are equal, the mask
  positions, so the difference between two choices' estimates has a smaller variance. Each
  request's own law is unchanged: k uniform on 1..ℓ, stratified rows, uniform positions.
- **exact enumeration** (`exact_max_patterns`): a continuation with 2^ℓ − 1 ≤ exact_max_patterns
  mask patterns is scored on every pattern S with weight 1/(|S|·C(ℓ, |S|)): the estimator's
  exact expectation (no Monte-Carlo error).
- **sequential stopping** (`stopping`, `round`, `z`, `cap`): rows in rounds of `round`; an item
  stops when the leader's paired difference to every other choice is ≥ z standard errors, or at
  `cap` rows; with `eliminate`, a choice already that far behind stops being sampled. The stopping time depends on the data, so a stopped estimate is no longer unbiased:
  it serves the decision (`acc`), not the value.

Rows of many items are packed into shared forwards (grouped by sequence length), so stopping
per item does not cost batching; every draw comes from the item's or the request's own seed, so
an estimate does not depend on the order or batching of other items.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .estimator import Estimator

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


@dataclass(frozen=True)
class LLRequest:
    """One answer choice: token ids, the item whose choices it is compared with (lm-eval's
    (task_name, doc_id); None: its own item), and its acc_norm divisor (the choice's characters)."""

    context: tuple[int, ...]
    continuation: tuple[int, ...]
    item: Hashable = None
    norm: float = 1.0


@dataclass(frozen=True)
class Estimate:
    """ll: the estimate; rows: mask patterns scored; forwards: model sequences run for it (rows,
    doubled under classifier-free guidance); exact: enumerated, no Monte-Carlo error; se: the
    standard error of ll from its rows' spread (0 when exact; conservative for stratified rows)."""

    ll: float
    rows: int
    forwards: int
    exact: bool
    se: float = 0.0
    row_losses: tuple[float, ...] = ()  # with keep_rows: each Monte-Carlo row's Σ CE · ℓ/x


@dataclass(frozen=True)
class Row:
    """One masked copy of a request: ids (context + continuation), context length and the
    masked continuation offsets (sorted)."""

    seq: tuple[int, ...]
    ctx: int
    positions: tuple[int, ...]


RowScorer = Callable[[Sequence[Row]], list[float]]
"""rows -> per row, Σ over its masked positions of the cross-entropy of the true token."""


class ModelScorer:
    """Scores rows with the model. Rows of equal length (and, under guidance, equal context
    length) from any requests share forwards of up to `batch_size` rows; `forwards` counts the
    sequences run, `calls` the model calls."""

    def __init__(
        self,
        logits_fn: LogitsFn,
        mask_id: int,
        cfg: float = 0.0,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
    ) -> None:
        self.logits_fn, self.mask_id, self.cfg = logits_fn, int(mask_id), float(cfg)
        self.batch_size, self.device = max(1, int(batch_size)), device
        self.forwards = self.calls = 0

    def __call__(self, rows: Sequence[Row]) -> list[float]:
        out = [0.0] * len(rows)
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            groups[(len(row.seq), row.ctx if self.cfg > 0 else 0)].append(i)
        for (_, ctx), idx in sorted(groups.items()):
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                for i, value in zip(chunk, self._score([rows[i] for i in chunk], ctx), strict=True):
                    out[i] = value
        return out

    def _score(self, rows: list[Row], ctx: int) -> list[float]:
        seq = torch.tensor([r.seq for r in rows], dtype=torch.long)
        is_mask = torch.zeros_like(seq, dtype=torch.bool)
        for j, r in enumerate(rows):
            is_mask[j, [r.ctx + p for p in r.positions]] = True
        noised = seq.masked_fill(is_mask, self.mask_id)
        logits = cfg_logits(self.logits_fn, noised.to(self.device), ctx, self.mask_id, self.cfg)
        sel = is_mask.to(logits.device)
        target = seq[is_mask].to(logits.device)
        ce = F.cross_entropy(logits[sel].float(), target, reduction="none").cpu().double()
        sums = torch.zeros(len(rows), dtype=torch.float64).index_add_(
            0, is_mask.nonzero()[:, 0], ce
        )
        self.forwards += len(rows) * (2 if self.cfg > 0 and ctx > 0 else 1)
        self.calls += 1
        return sums.tolist()


# ------------------------------------------------------------------------ draws ---
def item_seed(seed: int, item: Hashable) -> int:
    """A 63-bit seed of an item (e.g. (task_name, doc_id)): its choices share the draws."""
    h = hashlib.sha256(f"{int(seed)}|item|{item!r}".encode())
    return int.from_bytes(h.digest()[:8], "little") & ((1 << 63) - 1)


class IndependentDraws:
    """Today's draws: one generator per request seeded by `request_seed(seed, context,
    continuation)`; per stratum k ~ U{1..ℓ}, then a random permutation per row."""

    def __init__(self, seed: int, context: Sequence[int], continuation: Sequence[int]) -> None:
        self.length = len(continuation)
        self.gen = torch.Generator().manual_seed(request_seed(seed, context, continuation))

    def stratum(self, rows: int, u: float | None = None) -> list[tuple[int, ...]]:
        k = int(torch.randint(1, self.length + 1, (), generator=self.gen))
        return self.positions(mask_counts(k, self.length, rows))

    def positions(self, counts: list[int]) -> list[tuple[int, ...]]:
        perms = [torch.randperm(self.length, generator=self.gen)[:x] for x in counts]
        return [tuple(sorted(p.tolist())) for p in perms]


class CommonDraws(IndependentDraws):
    """Common random numbers: k = ⌊u·ℓ⌋ + 1 from the item's shared u ~ U[0, 1) (uniform on 1..ℓ
    for every ℓ, up to the 2^-53 grid of u), positions from a generator seeded by (item seed, ℓ):
    choices of equal length get identical masks, whatever the other choices are."""

    def __init__(self, item_seed_: int, length: int) -> None:
        self.length = length
        self.gen = torch.Generator().manual_seed(request_seed(item_seed_, [length]))

    def stratum(self, rows: int, u: float | None = None) -> list[tuple[int, ...]]:
        k = min(int(u * self.length), self.length - 1) + 1
        return self.positions(mask_counts(k, self.length, rows))

    def positions(self, counts: list[int]) -> list[tuple[int, ...]]:
        """One uniform random order of the ℓ positions per row (argsort of float64 uniforms, in
        one call per stratum); row r masks the first counts[r]."""
        order = torch.rand(len(counts), self.length, dtype=torch.float64, generator=self.gen)
        order = order.argsort(dim=1).tolist()
        return [tuple(sorted(o[:x])) for o, x in zip(order, counts, strict=True)]


def exact_patterns(length: int) -> list[tuple[tuple[int, ...], float]]:
    """Every non-empty subset S of the ℓ continuation positions with weight 1/(|S|·C(ℓ, |S|)).

    Σ_S w_S Σ_{i∈S} CE_i(S) is the expectation of the §7 row loss (k ~ U{1..ℓ}, S uniform of size
    k, loss Σ_S CE·ℓ/k): (1/ℓ)·(ℓ/k)·(1/C(ℓ, k)) per subset of size k."""
    out = []
    for bits in range(1, 1 << length):
        pos = tuple(i for i in range(length) if bits >> i & 1)
        out.append((pos, 1.0 / (len(pos) * math.comb(length, len(pos)))))
    return out


# ----------------------------------------------------------------------- engine ---
class _Choice:
    """State of one request while its item is active."""

    def __init__(self, index: int, req: LLRequest, exact: bool, draws, guided: bool) -> None:
        self.index, self.req, self.exact, self.draws = index, req, exact, draws
        self.seq = tuple(req.context) + tuple(req.continuation)
        self.ctx, self.length = len(req.context), len(req.continuation)
        self.per_row = 2 if guided and self.ctx > 0 else 1
        self.losses: list[float] = []  # Monte-Carlo rows: Σ CE · ℓ/x
        self.exact_loss, self.rows = 0.0, 0
        self.active = True  # still sampled (elimination stops a choice the rule has settled)

    @property
    def mc(self) -> bool:
        return not self.exact and self.length > 0

    def loss(self) -> float:
        if not self.mc:
            return self.exact_loss
        return sum(self.losses) / len(self.losses)

    def se(self) -> float:
        n = len(self.losses)
        if not self.mc or n < 2:
            return 0.0
        mean = sum(self.losses) / n
        return math.sqrt(sum((x - mean) ** 2 for x in self.losses) / (n - 1) / n)


class _Item:
    """The choices of one item, advanced together one stratum at a time."""

    def __init__(self, key: Hashable, seed: int) -> None:
        self.key, self.choices, self.done, self.started = key, [], 0, False
        self.seed = item_seed(seed, key)
        self._u_gen: torch.Generator | None = None

    def next_u(self) -> float:
        if self._u_gen is None:
            self._u_gen = torch.Generator().manual_seed(self.seed)
        return float(torch.rand((), dtype=torch.float64, generator=self._u_gen))

    @property
    def mc(self) -> list[_Choice]:
        """The Monte-Carlo choices still sampled."""
        return [c for c in self.choices if c.mc and c.active]


def needed(item_losses: torch.Tensor, norms: torch.Tensor, z: float, stop_on: str) -> list[bool]:
    """Stopping rule: which choices still need rows. For each decision of `stop_on` the leader
    (lowest mean loss = highest ll; ties: the first, as lm-eval's argmax) and every choice whose
    paired difference to it is < z standard errors; none when every difference is ≥ z standard
    errors or has no spread (identical rows, exact values).

    item_losses (C, n): per choice and row the row loss (an exact choice repeats its value);
    norms (C,): acc_norm divisors. With one choice or one row everything is needed."""
    n_choices, n = item_losses.shape
    if n_choices < 2 or n < 2:
        return [True] * n_choices
    if stop_on not in ("acc", "acc_norm", "both"):
        raise ValueError(
            f"evaluation.estimator.stop_on: {stop_on!r} must be resolved to acc, acc_norm or both "
            "(task_estimator resolves 'metric' from the task's metric)"
        )
    need = torch.zeros(n_choices, dtype=torch.bool)
    for norm in {"acc": [None], "acc_norm": [norms], "both": [None, norms]}[stop_on]:
        losses = item_losses if norm is None else item_losses / norm[:, None]
        lead = int(torch.argmin(losses.mean(1)))
        diff = losses - losses[lead]
        mean, se = diff.mean(1), diff.std(1) / math.sqrt(n)
        undecided = (se > 0) & (mean < z * se)
        undecided[lead] = False
        if bool(undecided.any()):
            need |= undecided
            need[lead] = True
    return need.tolist()


def resolved(item_losses: torch.Tensor, norms: torch.Tensor, z: float, stop_on: str) -> bool:
    """The stopping rule's verdict: no choice needs more rows (`needed`)."""
    return not any(needed(item_losses, norms, z, stop_on))


@torch.no_grad()
def estimate(
    requests: Sequence[LLRequest],
    logits_fn: LogitsFn | None,
    mask_id: int,
    estimator: Estimator,
    mc_num: int = 128,
    batch_size: int = 32,
    cfg: float = 0.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    scorer: RowScorer | None = None,
    max_active: int = 512,
    progress: bool = False,
    keep_rows: bool = False,
) -> list[Estimate]:
    """Estimates of log p(continuation | context) for every request with the `estimator`
    options (module docstring), in request order.

    Up to `max_active` items advance together: each step takes the next stratum of every active
    item (its exact patterns on the first step) and scores all their rows in shared forwards
    (`scorer`, default a ModelScorer on `logits_fn`). Items are requests sharing `item`; under
    CRN the draws come from `item_seed(seed, item)`, otherwise from each request's own seed.
    `keep_rows`: also return every Monte-Carlo row's loss (benchmarks).
    """
    scorer = scorer or ModelScorer(logits_fn, mask_id, cfg, batch_size, device)
    total = estimator.max_rows(mc_num)
    size = estimator.stratum_size(mc_num, batch_size)
    items: dict[Hashable, _Item] = {}
    for i, req in enumerate(requests):
        # a request without an item is its own item, seeded by its ids (not by its position)
        key = ("item", req.item) if req.item is not None else ("request", i)
        if key not in items:
            seed_key = req.item if req.item is not None else (req.context, req.continuation)
            items[key] = _Item(seed_key, seed)
        item = items[key]
        length = len(req.continuation)
        exact = estimator.exact_for(length)
        if exact or length == 0:
            draws = None
        elif estimator.crn:
            draws = CommonDraws(item.seed, length)
        else:
            draws = IndependentDraws(seed, req.context, req.continuation)
        item.choices.append(_Choice(i, req, exact, draws, cfg > 0))
    results: list[Estimate | None] = [None] * len(requests)
    pending, active = list(items.values())[::-1], []
    bar = tqdm(total=len(requests), desc="loglikelihood", disable=not progress)
    while pending or active:
        while pending and len(active) < max_active:
            active.append(pending.pop())
        rows, owners = [], []
        for item in active:
            if not item.started:
                item.started = True
                for ch in item.choices:
                    if ch.exact:
                        for pos, weight in exact_patterns(ch.length):
                            rows.append(Row(ch.seq, ch.ctx, pos))
                            owners.append((ch, weight, True))
            mc = item.mc
            if mc and item.done < total:
                n = min(size, total - item.done)
                u = item.next_u() if estimator.crn else None
                for ch in mc:
                    for pos in ch.draws.stratum(n, u):
                        rows.append(Row(ch.seq, ch.ctx, pos))
                        owners.append((ch, ch.length / len(pos), False))
                item.done += n
        sums = scorer(rows) if rows else []
        for (ch, weight, exact), value in zip(owners, sums, strict=True):
            ch.rows += 1
            if exact:
                ch.exact_loss += weight * value
            else:
                ch.losses.append(weight * value)
        still = []
        for item in active:
            if _finished(item, total, estimator):
                for ch in item.choices:
                    exact = not ch.mc and ch.length > 0
                    kept = tuple(ch.losses) if keep_rows else ()
                    results[ch.index] = Estimate(
                        -ch.loss(), ch.rows, ch.rows * ch.per_row, exact, ch.se(), kept
                    )
                bar.update(len(item.choices))
            else:
                still.append(item)
        active = still
    bar.close()
    return results  # type: ignore[return-value]


def _finished(item: _Item, total: int, estimator: Estimator) -> bool:
    """No Monte-Carlo choice left to sample, the cap reached, or (stopping) the rule satisfied.
    With `eliminate`, choices the rule no longer needs stop sampling and keep their value."""
    if not item.mc or item.done >= total:
        return True
    if not estimator.stopping:
        return False
    n = item.done
    live = [ch for ch in item.choices if ch.active]
    losses = torch.tensor(
        [ch.losses if ch.mc else [ch.exact_loss] * n for ch in live], dtype=torch.float64
    )
    norms = torch.tensor([float(ch.req.norm) for ch in live], dtype=torch.float64)
    need = needed(losses, norms, float(estimator.z), estimator.stop_on)
    if not any(need):
        return True
    if estimator.eliminate:
        for ch, keep in zip(live, need, strict=True):
            ch.active = ch.active and (keep or not ch.mc)
    return False
