"""The release's perplexity protocol (`ppl.json`; config/README.md#evaluation, evaluation.ppl).

What the authors' `eval_ppl_llada` / `eval_ppl_dream` (and `ppl_llada.py`) compute, knob for knob:

- **Text.** The first `rows` records of the test split (the release's streaming `take(128)`;
  `null` = all), whitespace-only records dropped, joined with newlines, tokenised in one call
  with the tokenizer's default special tokens (`tokenizer.encode(text)`).
- **Chunks.** Answers of `chunk_size` tokens starting at i = chunk_size, chunk_size + stride, …
  while i < n − chunk_size (the release's `range(chunk, n - chunk, stride)`), each with the up to
  `prompt_length` tokens before it as a clean prompt.
- **llada family** (`get_ppl`): each of `mc_num` draws masks k ~ U{1..chunk} answer positions
  (a uniformly random subset) and scores the mean CE over the masked positions, *without* 1/p;
  the chunk's log-PPL is the mean over draws.
- **dream family** (`get_nll_mc`, log_type "ftb"): each draw takes t ~ U[0, 1),
  p = (1 − eps)·t + eps, masks every answer position but the chunk's last token independently
  with probability p and scores Σ CE/p; a draw that masks nothing is dropped; the chunk's
  log-PPL is the mean over the kept draws divided by chunk_size.
- **Causal (AR) models**: exact next-token CE of the answer given the prompt (no draws).
- **Aggregate.** PPL = exp(mean of the chunk log-PPLs), i.e. the geometric mean of the chunk
  PPLs (LLaDA) = exp(Σ NLL / Σ tokens) (Dream); its stderr is that of the mean over chunks.

Randomness: one generator seeded with `seed` is consumed in the release's order (per chunk,
per draw: `randint` then `randperm` for llada, `rand(1)` then `rand(len)` over the whole
prompt + answer for dream), so the draws are the release's for a global torch seed `seed`, and
every variant of a model sees the same masks. Rows of one chunk go through the model in batches
of `batch_size`; batching does not change the draws.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

log = logging.getLogger(__name__)

PROTOCOLS = {"llada": "mean CE over masked positions", "dream": "sum CE/p over masked positions"}


@dataclass(frozen=True)
class PPLSettings:
    """The knobs of evaluation.ppl (defaults: the release's main scripts on WikiText-2)."""

    rows: int | None = 128
    prompt_length: int = 960
    chunk_size: int = 64
    stride: int = 64
    mc_num: int = 8
    batch_size: int = 8
    eps: float = 1e-3  # dream: p = (1 − eps)·t + eps (the release passes --noise_eps)

    def __post_init__(self):
        for key in ("prompt_length", "chunk_size", "stride", "mc_num", "batch_size"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"evaluation.ppl.{key} must be >= 1, got {getattr(self, key)}")
        if self.rows is not None and self.rows < 1:
            raise ValueError(f"evaluation.ppl.rows must be >= 1 or null, got {self.rows}")
        if not 0.0 <= self.eps < 1.0:
            raise ValueError(f"evaluation.ppl eps must be in [0, 1), got {self.eps}")


# -------------------------------------------------------------------- text ---
def protocol_text(records: Sequence[str], rows: int | None) -> str:
    """The first `rows` records (all if None), whitespace-only ones dropped, joined by newlines."""
    kept = records if rows is None else records[:rows]
    return "\n".join(r for r in kept if r.strip())


def write_ppl_text(
    corpus: dict, seed: int, test_txt: str | Path, rows: int | None, out_path: str | Path
) -> int:
    """Rule `ppl_text`: the protocol's text of the corpus test split (`protocol_text` of
    `corpus.test_records`), written byte for byte. Returns its length in characters."""
    from ..corpus import test_records

    text = protocol_text(test_records(corpus, seed, test_txt), rows)
    if not text:
        raise ValueError(
            f"evaluation.ppl.rows: the first {rows} records of the test split are all empty"
        )
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, out)
    log.info("%d characters -> %s", len(text), out)
    return len(text)


def chunk_starts(n_tokens: int, chunk_size: int, stride: int) -> range:
    """Start of every answer chunk: the release's `range(chunk, n − chunk, stride)`."""
    return range(chunk_size, n_tokens - chunk_size, stride)


# ------------------------------------------------------------------ draws ---
def llada_draws(answer_len: int, mc_num: int, gen: torch.Generator) -> torch.Tensor:
    """(mc_num, answer_len) bool masks: k ~ U{1..ℓ} positions, a uniformly random subset.

    The release masks row positions j with randperm[j] < k (a sorted prefix, then permuted).
    """
    rows = []
    for _ in range(mc_num):
        k = int(torch.randint(1, answer_len + 1, (), generator=gen))
        rows.append(torch.randperm(answer_len, generator=gen) < k)
    return torch.stack(rows)


def dream_draws(
    seq_len: int, answer_len: int, mc_num: int, eps: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mc_num, answer_len) bool masks and (mc_num,) mask probabilities p of Dream's process.

    Per draw t ~ U[0, 1) and a uniform number per position of the whole sequence; the first and
    last positions are never masked and only the answer's part is used (log_type "ftb").
    """
    masks, probs = [], []
    for _ in range(mc_num):
        t = torch.rand(1, generator=gen)
        p = (1 - eps) * t + eps
        m = torch.rand((1, seq_len), generator=gen) < p
        m[:, 0] = False
        m[:, -1] = False
        masks.append(m[0, seq_len - answer_len :])
        probs.append(p)
    return torch.stack(masks), torch.cat(probs)


# ----------------------------------------------------------------- scoring ---
@torch.no_grad()
def chunk_log_ppl(
    adapter: Any,
    prompt: Sequence[int],
    answer: Sequence[int],
    settings: PPLSettings,
    gen: torch.Generator,
    device: str | torch.device = "cpu",
) -> tuple[float, int]:
    """(log-PPL of the answer chunk given the prompt, draws kept) for the adapter's family.

    NaN when every draw was dropped (dream only): the chunk is then left out of the mean.
    """
    seq = torch.tensor(list(prompt) + list(answer), dtype=torch.long)
    n_prompt, n_answer = len(prompt), len(answer)
    if getattr(adapter, "causal", False):
        logits = adapter.logits(seq[None, :-1].to(device))[0, n_prompt - 1 :].float()
        ce = F.cross_entropy(logits, seq[n_prompt:].to(logits.device))
        return float(ce), 1
    mask_id = int(adapter.mask_token_id)
    dream = adapter.family == "dream"
    if dream:
        draws, p = dream_draws(len(seq), n_answer, settings.mc_num, settings.eps, gen)
    else:
        draws = llada_draws(n_answer, settings.mc_num, gen)
        p = torch.ones(settings.mc_num)
    is_mask = torch.cat([torch.zeros(len(draws), n_prompt, dtype=torch.bool), draws], dim=1)
    noised = torch.where(is_mask, mask_id, seq.unsqueeze(0))
    is_mask = noised == mask_id  # as the release: every mask-id position is scored
    losses = []
    for lo in range(0, len(noised), settings.batch_size):
        x, m = noised[lo : lo + settings.batch_size], is_mask[lo : lo + settings.batch_size]
        logits = adapter.mdm_logits(x.to(device))
        sel = m.to(logits.device)
        target = seq.unsqueeze(0).expand(len(x), -1)[m].to(logits.device)
        ce = F.cross_entropy(logits[sel].float(), target, reduction="none").cpu().double()
        row, count = m.nonzero()[:, 0], m.sum(1)
        weight = 1.0 / p[lo : lo + len(x)].double()  # dream: Σ CE/p; llada: p ≡ 1
        sums = torch.zeros(len(x), dtype=torch.float64).index_add_(0, row, ce * weight[row])
        for total, n in zip(sums.tolist(), count.tolist(), strict=True):
            if n > 0:  # dream drops a draw that masks nothing (llada: k >= 1, never empty)
                losses.append(total if dream else total / n)  # llada: mean CE, no 1/p
    if not losses:
        return math.nan, 0
    mean = sum(losses) / len(losses)
    return (mean / n_answer if dream else mean), len(losses)


def release_ppl(
    adapter: Any,
    ids: Sequence[int],
    settings: PPLSettings,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Per-chunk log-PPLs and the aggregate PPL of token stream `ids` (module docstring)."""
    c, s, lp = settings.chunk_size, settings.stride, settings.prompt_length
    max_len = getattr(adapter, "max_length", None)
    if max_len is not None and lp + c > max_len:
        raise ValueError(
            f"evaluation.ppl: prompt_length + chunk_size = {lp + c} exceeds the model's "
            f"max length {max_len}"
        )
    gen = torch.Generator().manual_seed(int(seed))
    chunks = []
    for i in tqdm(chunk_starts(len(ids), c, s), desc="perplexity chunks"):
        prompt, answer = ids[max(0, i - lp) : i], ids[i : i + c]
        if len(prompt) == 0 or len(answer) < c:  # the release's guard (never true here)
            continue
        value, kept = chunk_log_ppl(adapter, prompt, answer, settings, gen, device)
        chunks.append({"start": i, "prompt_tokens": len(prompt), "log_ppl": value, "draws": kept})
    values = torch.tensor(
        [ch["log_ppl"] for ch in chunks if not math.isnan(ch["log_ppl"])], dtype=torch.float64
    )
    n = len(values)
    if n == 0:
        raise ValueError(
            f"evaluation.ppl: the text has {len(ids)} tokens, too few for one chunk of "
            f"{c} tokens after the first {c} (lower chunk_size or raise rows)"
        )
    mean = float(values.mean())
    se = float(values.std() / math.sqrt(n)) if n > 1 else math.nan
    family = "causal" if getattr(adapter, "causal", False) else adapter.family
    return {
        "ppl": math.exp(mean),
        "log_ppl": mean,
        "log_ppl_stderr": se,
        "ppl_stderr": math.exp(mean) * se,  # delta method
        "ppl_ci95": [math.exp(mean - 1.96 * se), math.exp(mean + 1.96 * se)],
        "n_chunks": n,
        "n_chunks_dropped": len(chunks) - n,
        "n_tokens": len(ids),
        "protocol": family,
        "loss": PROTOCOLS.get(family, "exact next-token CE"),
        "settings": asdict(settings),
        "seed": int(seed),
        "chunks": chunks,
    }


def ppl_eval(
    adapter: Any,
    tokenizer: Any,
    text_path: str | Path,
    settings: PPLSettings,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """The ppl.json payload: tokenise `text_path` (a `ppl_text` output) as the release does,
    then `release_ppl`."""
    with open(text_path, encoding="utf-8", newline="") as f:  # no newline translation
        text = f.read()
    ids = tokenizer(text)["input_ids"]  # the tokenizer's default special tokens, one call
    log.info("%s: %d tokens", text_path, len(ids))
    out = release_ppl(adapter, ids, settings, seed, device)
    log.info(
        "ppl %.4f (log %.4f ± %.4f over %d chunks)",
        out["ppl"],
        out["log_ppl"],
        out["log_ppl_stderr"],
        out["n_chunks"],
    )
    return {"text": str(text_path), **out}
