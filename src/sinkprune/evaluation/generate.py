"""Generation with a masked diffusion LM: blockwise low-confidence remasking (method.md §7).

Start from context + `gen_length` masks split into blocks of `block_length`; `steps` are spread
evenly over the blocks. At each step of a block, predict every masked position, and commit the
ones with the highest confidence (probability of the predicted token) in the current block; the
number committed per step is the block's mask count spread evenly over its steps (earlier steps
take the remainder), as in the LLaDA release. Temperature 0 is argmax; temperature > 0 adds
Gumbel noise (float64) from a seeded generator. Runs in one process, one request at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .likelihood import LogitsFn, cfg_logits


def transfer_schedule(n_masked: int, steps: int) -> list[int]:
    """Tokens to commit at each of `steps` steps: n // steps each, the first n % steps get +1."""
    base, rem = divmod(n_masked, steps)
    return [base + (1 if i < rem else 0) for i in range(steps)]


def check_gen_settings(gen_length: int, steps: int, block_length: int) -> int:
    """Validate the generation settings; returns steps per block."""
    if gen_length % block_length:
        raise ValueError(
            f"gen_length ({gen_length}) must be a multiple of block_length ({block_length})"
        )
    n_blocks = gen_length // block_length
    if steps % n_blocks:
        raise ValueError(
            f"steps ({steps}) must be a multiple of the number of blocks "
            f"gen_length/block_length = {n_blocks}"
        )
    return steps // n_blocks


@torch.no_grad()
def diffusion_generate(
    logits_fn: LogitsFn,
    prompt: Sequence[int],
    mask_id: int,
    gen_length: int = 128,
    steps: int = 128,
    block_length: int = 128,
    temperature: float = 0.0,
    cfg: float = 0.0,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> list[int]:
    """Generate `gen_length` tokens after `prompt`; returns the generated ids only."""
    per_block = check_gen_settings(gen_length, steps, block_length)
    p = len(prompt)
    x = torch.full((1, p + gen_length), mask_id, dtype=torch.long, device=device)
    x[0, :p] = torch.tensor(list(prompt), dtype=torch.long)
    for blk in range(gen_length // block_length):
        lo, hi = p + blk * block_length, p + (blk + 1) * block_length
        schedule = transfer_schedule(int((x[0, lo:hi] == mask_id).sum()), per_block)
        for n in schedule:
            masked = x[0] == mask_id
            logits = cfg_logits(logits_fn, x, p, mask_id, cfg)[0]
            logits = logits.double() if temperature > 0 else logits.float()
            if temperature > 0:
                u = torch.rand(logits.shape, generator=generator, dtype=torch.float64)
                u = u.to(logits.device)
                noisy = logits.exp() / (-torch.log(u)) ** temperature
                x0 = noisy.argmax(-1)
            else:
                x0 = logits.argmax(-1)
            conf = torch.softmax(logits, -1).gather(-1, x0[:, None])[:, 0]
            conf[hi:] = -torch.inf
            conf[~masked] = -torch.inf
            if n > 0:
                commit = torch.topk(conf, n).indices
                x[0, commit] = x0[commit]
    return x[0, p:].tolist()


@torch.no_grad()
def ar_generate(
    logits_fn: LogitsFn,
    prompt: Sequence[int],
    gen_length: int,
    stop_ids: Sequence[int] = (),
    device: str | torch.device = "cpu",
) -> list[int]:
    """Greedy autoregressive generation for a causal LM (logits at i predict i+1)."""
    x = torch.tensor([list(prompt)], dtype=torch.long, device=device)
    out: list[int] = []
    for _ in range(gen_length):
        nxt = int(logits_fn(x)[0, -1].argmax())
        out.append(nxt)
        if nxt in stop_ids:
            break
        x = torch.cat([x, torch.tensor([[nxt]], device=device)], dim=1)
    return out


def cut_at_stops(text: str, until: Sequence[str]) -> str:
    """`text` cut at each stop string in turn, keeping the part before it (the release's loop:
    `if stop in text: text = text.split(stop)[0]` for every stop, in the task's order)."""
    for stop in until:
        if stop and stop in text:
            text = text.split(stop)[0]
    return text
