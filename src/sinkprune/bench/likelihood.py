"""MC log-likelihood throughput: today's per-request path against the batched estimator.

Side by side on the same requests and model (the dense model of `_dlm`, its next_line,
last_word and minimal-pair items): requests/s and forwards of

- the standard protocol as `sinkprune_dlm` runs it with every estimator option off: each request
  alone, `mc_num` = 128 rows in forwards of `batch_size` = 32 rows (`mc_loglikelihood`);
- the fast estimator's options (`agreement.FAST`, config/fast_estimator.yaml) through
  `likelihood.estimate`, whose rounds of many items share forwards of up to 64 rows;
- the same options with one item at a time (max_active = 1), which shows what the shared
  forwards are worth.

`throughput` is the measurement itself, usable on any device: the GPU check of issue #13 calls it
with an 8B-shaped random model and `synthetic_requests`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence

import torch

from sinkprune.evaluation.estimator import Estimator
from sinkprune.evaluation.likelihood import (
    LLRequest,
    LogitsFn,
    ModelScorer,
    estimate,
    mc_loglikelihood,
)

log = logging.getLogger(__name__)

STANDARD = ("standard protocol (per request, 128 rows, forwards of 32)", Estimator(), 128, 32)


def synthetic_requests(
    n_items: int, n_choices: int, context_len: int, continuation_len: int, vocab: int, seed: int = 0
) -> list[LLRequest]:
    """Random-token multiple-choice items (ids in 4..vocab-1, every choice of one item the same
    length, one shared context per item): shapes for a device check, no tokenizer needed."""
    rng = random.Random(seed)
    out = []
    for doc in range(n_items):
        ctx = tuple(rng.randrange(4, vocab) for _ in range(context_len))
        for _ in range(n_choices):
            cont = tuple(rng.randrange(4, vocab) for _ in range(continuation_len))
            out.append(LLRequest(ctx, cont, ("synthetic", doc), float(continuation_len)))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def throughput(
    logits_fn: LogitsFn,
    mask_id: int,
    requests: Sequence[LLRequest],
    settings: Sequence[tuple[str, Estimator, int, int]],
    device: str | torch.device = "cpu",
    cfg: float = 0.0,
    seed: int = 0,
) -> list[dict]:
    """Requests/s of each setting (name, estimator, mc_num, rows per forward) on `requests`.

    A setting whose estimator is standard runs today's path (`mc_loglikelihood` per request,
    as `sinkprune_dlm` does with every option off); any other runs `estimate` (rows of many
    items in shared forwards); a name containing "one item at a time" runs `estimate` with
    max_active = 1. Forwards are counted by the scorer (or mc_num per request on today's path).
    """
    device = torch.device(device)
    rows = []
    for name, est, mc_num, batch_size in settings:
        _sync(device)
        start = time.perf_counter()
        if est.standard:
            for r in requests:
                mc_loglikelihood(logits_fn, r.context, r.continuation, mask_id, mc_num,
                                 batch_size, cfg, seed, device)  # fmt: skip
            fwd = sum(mc_num * (2 if cfg > 0 and r.context else 1) for r in requests)
            calls = sum(-(-mc_num // batch_size) for _ in requests)
        else:
            scorer = ModelScorer(logits_fn, mask_id, cfg, batch_size, device)
            one = "one item at a time" in name
            estimate(requests, logits_fn, mask_id, est, mc_num, batch_size, cfg, seed, device,
                     scorer=scorer, max_active=1 if one else 512)  # fmt: skip
            fwd, calls = scorer.forwards, scorer.calls
        _sync(device)
        seconds = time.perf_counter() - start
        rows.append({
            "setting": name, "estimator": est.as_dict(), "mc_num": mc_num,
            "rows_per_forward": batch_size, "requests": len(requests),
            "seconds": round(seconds, 3), "requests_per_s": len(requests) / seconds,
            "forwards": fwd, "model_calls": calls, "rows_per_call": fwd / max(1, calls),
        })  # fmt: skip
        log.info("%s: %.1f requests/s", name, len(requests) / seconds)
    return rows


def device_check(
    adapter,
    device: str | torch.device = "cuda",
    n_items: int = 5,
    n_choices: int = 4,
    context_len: int = 256,
    continuation_len: int = 16,
    seed: int = 0,
) -> dict:
    """The log-likelihood part of a device check (issue #13's GPU check): requests/s of today's
    path and of the fast estimator (`agreement.FAST`, forwards of 64 rows) on
    `n_items` × `n_choices` synthetic requests with the adapter's model (any weights) on
    `device`. JSON-serialisable."""
    from .agreement import FAST

    mask_id = int(adapter.mask_token_id)
    vocab = int(adapter.config.vocab_size)
    reqs = synthetic_requests(n_items, n_choices, context_len, continuation_len, vocab, seed)
    reqs = [  # no mask token among the ids
        LLRequest(
            *(tuple(4 if t == mask_id else t for t in ids) for ids in (r.context, r.continuation)),
            r.item,
            r.norm,
        )  # fmt: skip
        for r in reqs
    ]
    fast = (f"{FAST.name} (estimate, forwards of 64)", FAST.estimator, FAST.mc_num, 64)
    rows = throughput(adapter.mdm_logits, mask_id, reqs, [STANDARD, fast], device)
    out = {
        "requests": len(reqs),
        "context_tokens": context_len,
        "continuation_tokens": continuation_len,
        "device": str(device),
        "rows": rows,
        "speedup": rows[1]["requests_per_s"] / rows[0]["requests_per_s"],
    }
    if torch.device(device).type == "cuda":
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def run(quick: bool = False) -> dict:
    from sinkprune.evaluation.lm import SinkpruneDLM

    from .agreement import FAST, FULL, QUICK, task_requests

    plan = QUICK if quick else FULL
    setup = plan.build()
    adapter = setup.adapters["dense"]
    lm = SinkpruneDLM(adapter=adapter, tokenizer=setup.tokenizer)
    n = 2 if quick else 24
    requests = [
        r
        for items in setup.items.values()
        for r in task_requests(items[:n], lm.encode_pair).requests
    ]
    fast = (f"{FAST.name} (estimate, forwards of 64)", FAST.estimator, FAST.mc_num, 64)
    one = (f"{FAST.name} (estimate, one item at a time)", FAST.estimator, FAST.mc_num, 64)
    settings = [STANDARD, fast, one]
    rows = throughput(adapter.mdm_logits, int(adapter.mask_token_id), requests, settings)
    base = rows[0]["requests_per_s"]
    for r in rows:
        r["speedup"] = r["requests_per_s"] / base
    headline = (
        f"requests/s on CPU: {rows[1]['requests_per_s']:.1f} ({FAST.name}) vs {base:.1f} "
        f"(standard protocol), {rows[1]['speedup']:.1f}x; forwards {rows[1]['forwards']} vs "
        f"{rows[0]['forwards']}; one item at a time: {rows[2]['speedup']:.1f}x"
    )
    shapes = {"requests": len(requests), "items_per_task": n, "tasks": list(setup.items),
              "threads": torch.get_num_threads(), "model": setup.info["model_description"]}  # fmt: skip
    lines = [
        "## MC log-likelihood: requests/s, today's path vs the batched estimator",
        "",
        f"{len(requests)} requests ({n} items of each of {list(setup.items)}), dense bench model, "
        f"CPU, {torch.get_num_threads()} thread(s). Forwards counted; a model call is one "
        "forward pass of up to `rows/forward` sequences.",
        "",
        "| setting | requests/s | × | forwards | model calls | rows per call |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['requests_per_s']:.1f} | {r['speedup']:.2f} | "
            f"{r['forwards']} | {r['model_calls']} | {r['rows_per_call']:.1f} |"
        )
    return {
        "name": "likelihood",
        "title": "MC log-likelihood: requests/s (issue #13, #19)",
        "shapes": shapes,
        "rows": rows,
        "headline": headline,
        "markdown": "\n".join(lines + ["", headline, ""]),
    }
