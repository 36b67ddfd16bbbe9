"""Held-out likelihood on the corpus test split (`heldout.json` of rule `evaluate`).

Masked diffusion LM: masked-token cross-entropy at each t of `t_grid` (every position masked
independently with probability t, fixed seeded masks shared by all variants), and an ELBO
estimate of bits per token: −mc_loglikelihood(window | ∅)/seqlen/ln 2 with the §7 estimator
(an upper bound on the true bits per token). Causal (AR) model: exact next-token cross-entropy.
Windows are `n_sequences` non-overlapping `seqlen`-token chunks of the tokenised test split,
picked with a seeded generator.

Every value is also kept per window (`windows`: the chunk index of each window in the test
split; `ce_sum_per_window` / `n_masked_per_window` per t; `nats_per_window` of the ELBO), so two
variants can be compared paired over the same windows (sinkprune.statistics). The masks and MC
draws depend only on the seed and the window, so every variant sees the same ones.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from sinkprune.statistics import ratio_stderr

from .likelihood import mc_loglikelihood

log = logging.getLogger(__name__)


def heldout_windows(text: str, encode, n_sequences: int, seqlen: int, seed: int) -> torch.Tensor:
    """(n_sequences, seqlen) token ids: seeded choice of non-overlapping chunks, in text order."""
    return heldout_chunks(text, encode, n_sequences, seqlen, seed)[1]


def heldout_chunks(
    text: str, encode, n_sequences: int, seqlen: int, seed: int
) -> tuple[list[int], torch.Tensor]:
    """The chunk indices (window j covers tokens j·seqlen … (j+1)·seqlen − 1) and the windows."""
    ids = torch.tensor(encode(text), dtype=torch.long)
    n_chunks = ids.numel() // seqlen
    if n_chunks < n_sequences:
        raise ValueError(
            f"test split has {ids.numel()} tokens = {n_chunks} windows of {seqlen}; "
            f"evaluation.heldout.n_sequences is {n_sequences}: lower it or evaluation.heldout.seqlen"
        )
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(n_chunks, generator=gen)[:n_sequences].sort().values
    return pick.tolist(), ids[: n_chunks * seqlen].view(n_chunks, seqlen)[pick]


@torch.no_grad()
def masked_ce(
    logits_fn, windows: torch.Tensor, t: float, mask_id: int, seed: int, batch_size: int, device
) -> dict[str, float]:
    """Token-level mean CE (nats) with its stderr over windows, accuracy, and the per-window CE
    sums and masked counts, on positions masked with probability t."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(windows.shape, generator=gen) < t
    empty = ~mask.any(1)  # every window scores at least one token
    mask[empty, torch.randint(windows.shape[1], (int(empty.sum()),), generator=gen)] = True
    sums, counts, correct = [], [], 0
    for lo in range(0, windows.shape[0], batch_size):
        x, m = windows[lo : lo + batch_size], mask[lo : lo + batch_size]
        logits = logits_fn(torch.where(m, mask_id, x).to(device))
        sel = logits[m.to(logits.device)].float()  # masked positions only, in fp32
        target = x[m].to(logits.device)
        ce = F.cross_entropy(sel, target, reduction="none").cpu()
        row = m.nonzero()[:, 0]  # the window of each masked position
        sums += torch.zeros(len(x)).index_add_(0, row, ce).tolist()
        counts += m.sum(1).tolist()
        correct += int((sel.argmax(-1) == target).sum())
    n = sum(counts)
    return {
        "t": t,
        "ce_nats": sum(sums) / n,
        "ce_nats_stderr": ratio_stderr(sums, counts),
        "accuracy": correct / n,
        "n_masked": n,
        "ce_sum_per_window": sums,
        "n_masked_per_window": counts,
    }


@torch.no_grad()
def next_token_ce(logits_fn, windows: torch.Tensor, batch_size: int, device) -> dict[str, Any]:
    """Token-level mean next-token CE (nats) with its stderr over windows, accuracy, and the
    per-window CE sums of a causal LM."""
    sums, correct = [], 0
    for lo in range(0, windows.shape[0], batch_size):
        x = windows[lo : lo + batch_size]
        logits = logits_fn(x.to(device))[:, :-1].float()
        target = x[:, 1:].to(logits.device)
        ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")  # (b, T-1)
        sums += ce.sum(1).cpu().tolist()
        correct += int((logits.argmax(-1) == target).sum())
    counts = [windows.shape[1] - 1] * len(sums)
    n = sum(counts)
    return {
        "ce_nats": sum(sums) / n,
        "ce_nats_stderr": ratio_stderr(sums, counts),
        "accuracy": correct / n,
        "n_tokens": n,
        "ce_sum_per_window": sums,
    }


def heldout_eval(
    adapter: Any,
    tokenizer: Any,
    test_txt: str | Path,
    n_sequences: int = 64,
    seqlen: int = 64,
    t_grid: list[float] = (0.15, 0.5, 0.85),
    mc_num: int = 32,
    batch_size: int = 8,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """The heldout.json payload for one checkpoint (see module docstring)."""
    max_len = getattr(adapter, "max_length", None)
    if max_len is not None and seqlen > max_len:
        raise ValueError(
            f"evaluation.heldout.seqlen ({seqlen}) exceeds the model's max length ({max_len})"
        )
    encode = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    chunks, windows = heldout_chunks(
        Path(test_txt).read_text(encoding="utf-8"), encode, n_sequences, seqlen, seed
    )
    causal = bool(getattr(adapter, "causal", False))
    out: dict[str, Any] = {
        "test_split": str(test_txt),
        "n_sequences": n_sequences,
        "seqlen": seqlen,
        "seed": seed,
        "causal": causal,
        "windows": chunks,
    }
    if causal:
        ce = next_token_ce(lambda x: adapter.logits(x), windows, batch_size, device)
        out |= {"next_token": ce, "masked": [], "elbo": None}
        out["bits_per_token"] = ce["ce_nats"] / math.log(2)
        return out
    mask_id = int(adapter.mask_token_id)
    logits_fn = adapter.mdm_logits
    out["masked"] = [
        masked_ce(logits_fn, windows, float(t), mask_id, seed * 1000 + i, batch_size, device)
        for i, t in enumerate(t_grid)
    ]
    nats = torch.tensor(
        [
            -mc_loglikelihood(
                logits_fn, [], w.tolist(), mask_id, mc_num, batch_size, seed=seed, device=device
            )
            for w in tqdm(windows, desc="heldout ELBO")
        ]
    )
    bits = nats / seqlen / math.log(2)
    out["elbo"] = {
        "mc_num": mc_num,
        "nats_per_sequence": float(nats.mean()),
        "bits_per_token": float(bits.mean()),
        "bits_per_token_stderr": float(bits.std() / math.sqrt(len(bits))) if len(bits) > 1 else 0.0,
        "nats_per_window": nats.tolist(),
    }
    out["next_token"] = None
    out["bits_per_token"] = out["elbo"]["bits_per_token"]
    return out
