"""Local lm-eval tasks built from the corpus test split (rule `local_tasks`), fully offline.

Minimal pairs (BLiMP-style, 2 choices, chance 50%): a real line of the test plays against a
controlled corruption of it, graded from easy to hard:

- `shakespeare_shuffle`: all words of the line in a random order, none in its place.
- `shakespeare_reverse`: the words of the line in reverse order.
- `shakespeare_swap`: two non-adjacent, different words swapped.
- `shakespeare_adjacent_swap`: two adjacent, different words swapped.
- `shakespeare_substitute`: one word replaced by a word of similar corpus frequency.
- `shakespeare_line_ending`: the line's second half replaced by the second half of a line
  from another speech.

A pair is scored like BLiMP's one-prefix method: the words both versions share at the start are
the context, the rest of each version is a choice. The prefix's likelihood is the same for both,
so conditioning on it removes a source of Monte Carlo noise without changing what is compared
(log p(line) = log p(prefix) + log p(rest | prefix)). Both choices have the same number of tokens
(corruptions that change the count are redrawn or the line is skipped), so neither gains from
length under the masked-diffusion estimator, which sums over continuation tokens (method.md §7).

Older multiple-choice and generation tasks (4 choices, chance 25%; generation, chance ≈ 0):

- `shakespeare_next_line`: given a line, pick the true next line of the same speech among it
  and 3 lines of the same token length from other speeches.
- `shakespeare_last_word`: given the previous line and a line without its last word, pick the
  true last word among it and 3 words of similar corpus frequency.
- `shakespeare_complete_line` (exact match): given the previous line and the first part of a
  line, generate the rest of the line (up to the newline).

Every item fits in `max_tokens` tokens of the project tokenizer (context + longest answer, or
context + `gen_tokens` for generation). Each task is a YAML, a test JSONL (`n_items`) and a train
JSONL (few-shot pool) whose items share no corpus line with the test items. The YAMLs name their
data files relative to their own folder and load them through `local_data.py` (written next to
them, plain `datasets`), so the folder works from any working directory and after a move.
Importing this module is cheap.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

log = logging.getLogger(__name__)

NEXT_LINE, LAST_WORD, COMPLETE_LINE = (
    "shakespeare_next_line",
    "shakespeare_last_word",
    "shakespeare_complete_line",
)
SHUFFLE, REVERSE, SWAP, ADJACENT_SWAP, SUBSTITUTE, LINE_ENDING = (
    "shakespeare_shuffle",
    "shakespeare_reverse",
    "shakespeare_swap",
    "shakespeare_adjacent_swap",
    "shakespeare_substitute",
    "shakespeare_line_ending",
)
#: easy to hard (by the dense tiny-dlm's accuracy, docs/decisions.md)
MINIMAL_PAIRS = (SHUFFLE, REVERSE, SWAP, ADJACENT_SWAP, SUBSTITUTE, LINE_ENDING)
LOCAL_TASKS = (*MINIMAL_PAIRS, NEXT_LINE, LAST_WORD, COMPLETE_LINE)
CHANCE = {NEXT_LINE: 0.25, LAST_WORD: 0.25, COMPLETE_LINE: 0.0} | dict.fromkeys(MINIMAL_PAIRS, 0.5)
METRIC = {COMPLETE_LINE: "exact_match"} | {t: "acc" for t in LOCAL_TASKS if t != COMPLETE_LINE}
DESCRIPTION = {
    SHUFFLE: "real line (8+ words) vs all its words in a random order, none in its place",
    REVERSE: "real line (8+ words) vs its words in reverse order",
    LINE_ENDING: "real line vs its second half replaced by another speech's line ending",
    SWAP: "real line vs two non-adjacent, different words swapped",
    SUBSTITUTE: "real line vs one word replaced by a word of similar corpus frequency (rank ±10)",
    ADJACENT_SWAP: "real line vs two adjacent, different words swapped",
    NEXT_LINE: "true next line of the speech vs 3 lines of the same token count (or the "
    "nearest, within 2) from other speeches",
    LAST_WORD: "true last word of a line vs 3 words of similar corpus frequency (rank ±10), "
    "with the previous line as extra context",
    COMPLETE_LINE: "generate the last 1-3 words of a line given the previous line and its "
    "start; exact match ignoring surrounding whitespace and punctuation",
}
N_CHOICES = 4
FEWSHOT_POOL = 20
MARGIN = 2  # tokens kept free for delimiters
MAX_TRIES = 20  # corruption draws per line before it is skipped
#: whole-line reorderings use lines of at least this many words: the more words move, the more
#: evidence against the corruption (measured: tiny-dlm 69% on 4-5-word lines, 77% on 8+)
MIN_REORDER_WORDS = 8
LOADER = "local_data"  # module written next to the YAMLs; loads their JSONL files
_STAGE = re.compile(r"^(\[|\(|enter\b|exit\b|exeunt\b|re-enter\b|scene\b|act\b)", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z']*[A-Za-z]|[A-Za-z]")


@dataclass(frozen=True)
class Line:
    text: str
    block: int  # speech (blank-line separated block) index
    index: int  # line number in the file: adjacent lines differ by 1


def is_verse(line: str) -> bool:
    """A spoken line: has lowercase letters (not a speaker name), no stage direction, 4+ words."""
    s = line.strip()
    return (
        len(s.split()) >= 4
        and any(c.islower() for c in s)
        and not _STAGE.match(s)
        and "]" not in s
        and "<" not in s
    )


def corpus_lines(text: str) -> list[Line]:
    """Spoken lines of the text with their block (speech) ids. Text without line structure
    (one long line per paragraph) is split into sentence-like pieces of 4-20 words."""
    raw = text.replace("\r\n", "\n").split("\n")
    words_per_line = sorted(len(x.split()) for x in raw if x.strip())
    if words_per_line and words_per_line[len(words_per_line) // 2] > 40:
        raw = [p for x in raw for p in re.split(r"(?<=[.!?;:])\s+", x)]
    out, block = [], 0
    for i, line in enumerate(raw):
        if not line.strip():
            block += 1
        elif is_verse(line) and len(line.split()) <= 20:
            out.append(Line(" ".join(line.split()), block, i))
    return out


def adjacent_pairs(lines: list[Line]) -> list[tuple[Line, Line]]:
    """Consecutive spoken lines of one speech (no line between them)."""
    return [
        (a, b)
        for a, b in zip(lines, lines[1:], strict=False)
        if a.block == b.block and b.index == a.index + 1
    ]


def split_last_word(text: str) -> tuple[str, str] | None:
    """(line without its last word, last word) when the line ends in a word (+ punctuation)."""
    m = re.search(r"\s([A-Za-z][A-Za-z']*[A-Za-z])[^\sA-Za-z']*$", text)
    if not m or len(m.group(1)) < 2:
        return None
    return text[: m.start()].rstrip(), m.group(1)


def word_ranks(lines: list[Line]) -> tuple[list[str], dict[str, int]]:
    """Lowercased words by descending frequency (ties alphabetical) and their ranks."""
    counts = Counter(w.lower() for ln in lines for w in _WORD.findall(ln.text))
    words = sorted(counts, key=lambda w: (-counts[w], w))
    return words, {w: r for r, w in enumerate(words)}


def match_case(word: str, like: str) -> str:
    return word.capitalize() if like[:1].isupper() else word


class Budget:
    """Counts tokens with the project tokenizer; items must fit in `max_tokens`."""

    def __init__(self, encode: Callable[[str], list[int]], max_tokens: int):
        self.encode, self.max_tokens = encode, max_tokens

    def n(self, text: str) -> int:
        return len(self.encode(text))

    def fits(self, context: str, longest_answer_tokens: int) -> bool:
        return self.n(context) + longest_answer_tokens + MARGIN <= self.max_tokens

    def head(self, text: str, limit: int, prefix: str = "") -> str | None:
        """`text` cut after its last word that keeps `prefix + text` within `limit` tokens
        (at least 2 words), else None."""
        words = text.split(" ")
        for k in range(len(words), 1, -1):
            cut = " ".join(words[:k])
            if self.n(prefix + cut) <= limit:
                return cut
        return None

    def tail(self, text: str, limit: int) -> str | None:
        """`text` without its leading words, so that it fits in `limit` tokens, else None."""
        words = text.split(" ")
        for k in range(len(words)):
            cut = " ".join(words[k:])
            if cut and self.n(cut) <= limit:
                return cut
        return None


def with_previous(prev: Line | None, cur: Line, partial: str) -> str:
    """The previous line of the speech (if adjacent) and a partial current line."""
    if prev is not None and prev.block == cur.block and prev.index == cur.index - 1:
        return prev.text + "\n" + partial
    return partial


def shuffled(n: int, rng: random.Random) -> list[int]:
    order = list(range(n))
    rng.shuffle(order)
    return order


def mc_item(context: str, choices: list[str], rng: random.Random) -> dict:
    """A multiple-choice doc with the true answer (choices[0]) at a random position."""
    order = shuffled(len(choices), rng)
    return {"context": context, "choices": [choices[i] for i in order], "label": order.index(0)}


Item = tuple[dict, frozenset[str]]
"""A doc and the corpus lines (texts) it was made from: no line is in two splits."""


def next_line_items(lines: list[Line], budget: Budget, rng: random.Random) -> Iterator[Item]:
    """Context = line i (its last words if too long), answer = line i+1 (its first words if too
    long), each within half the budget; distractors are other speeches' lines cut the same way,
    with the answer's token count (or the nearest, within 2)."""
    half = (budget.max_tokens - MARGIN) // 2
    heads: list[tuple[str, int] | None] = []
    by_len: dict[int, list[tuple[str, int]]] = {}
    for ln in lines:
        cut = budget.head(ln.text, half, prefix="\n")
        heads.append(None if cut is None else (cut, ln.block))
        if cut is not None:
            by_len.setdefault(budget.n("\n" + cut), []).append((cut, ln.block))
    index = {id(ln): i for i, ln in enumerate(lines)}
    pairs = adjacent_pairs(lines)
    for i in shuffled(len(pairs), rng):
        a, b = pairs[i]
        context, answer = budget.tail(a.text, half), heads[index[id(b)]]
        if context is None or answer is None:
            continue
        nb = budget.n("\n" + answer[0])
        for width in range(3):  # same token count if possible: no length bias in the sums
            near = {
                t
                for n in range(nb - width, nb + width + 1)
                for t, blk in by_len.get(n, [])
                if blk != a.block
            }
            near = sorted(near - {answer[0]})
            if len(near) >= N_CHOICES - 1:
                break
        else:
            continue
        choices = [answer[0], *rng.sample(near, N_CHOICES - 1)]
        if budget.fits(context, max(budget.n("\n" + c) for c in choices)):
            yield mc_item(context, choices, rng), frozenset({a.text, b.text})


def last_word_items(lines: list[Line], budget: Budget, rng: random.Random) -> Iterator[Item]:
    """Context = previous line + the line without its last word (leading words dropped to fit)."""
    words, rank = word_ranks(lines)
    for i in shuffled(len(lines), rng):
        cur, prev = lines[i], lines[i - 1] if i else None
        split = split_last_word(cur.text)
        if split is None:
            continue
        head, word = split
        r = rank[word.lower()]
        window = words[max(0, r - 10) : r + 11]
        window = [w for w in window if w != word.lower() and len(w) > 1 and "'" not in w]
        if len(window) < N_CHOICES - 1:
            continue
        choices = [word, *(match_case(w, word) for w in rng.sample(window, N_CHOICES - 1))]
        longest = max(budget.n(" " + c) for c in choices)
        context = budget.tail(with_previous(prev, cur, head), budget.max_tokens - MARGIN - longest)
        if context is not None and len(context.split()) >= 2:
            sources = {cur.text} | ({prev.text} if "\n" in context else set())
            yield mc_item(context, choices, rng), frozenset(sources)


def complete_line_items(
    lines: list[Line], budget: Budget, rng: random.Random, gen_tokens: int
) -> Iterator[Item]:
    """Context = previous line + the line's start (leading words dropped to fit), target = the
    line's last 1-3 words (with their newline within `gen_tokens`)."""
    for i in shuffled(len(lines), rng):
        cur, prev = lines[i], lines[i - 1] if i else None
        words = cur.text.split()
        if len(words) < 5:
            continue
        k = rng.randint(1, min(3, len(words) // 3))  # complete the last 1-3 words
        head, target = " ".join(words[:-k]), " " + " ".join(words[-k:])
        if budget.n(target + "\n") > gen_tokens:
            continue
        context = budget.tail(
            with_previous(prev, cur, head), budget.max_tokens - MARGIN - gen_tokens
        )
        if context is not None and len(context.split()) >= 2:
            sources = {cur.text} | ({prev.text} if "\n" in context else set())
            yield {"context": context, "target": target}, frozenset(sources)


# ------------------------------------------------------------ minimal pairs ---
Corruption = Callable[[list[str], Line, random.Random], "list[str] | None"]
_CORE = re.compile(r"^([^A-Za-z]*)([A-Za-z](?:[A-Za-z']*[A-Za-z])?)([^A-Za-z]*)$")


def shuffle_words(words: list[str], rng: random.Random) -> list[str] | None:
    """The words in a random order with none in its original place (a derangement) and a
    different text; None when no such order turns up (e.g. all words equal)."""
    n = len(words)
    for _ in range(100):
        order = shuffled(n, rng)
        out = [words[i] for i in order]
        if all(order[i] != i for i in range(n)) and out != words:
            return out
    return None


def swap_words(words: list[str], rng: random.Random, adjacent: bool) -> list[str] | None:
    """Two different words swapped: neighbours (`adjacent`) or with at least one word between."""
    gaps = [1] if adjacent else range(2, len(words))
    pairs = [(i, i + g) for g in gaps for i in range(len(words) - g) if words[i] != words[i + g]]
    if not pairs:
        return None
    i, j = rng.choice(pairs)
    out = list(words)
    out[i], out[j] = out[j], out[i]
    return out


class Substitutes:
    """Replacement words of similar frequency in the test split: rank ±`window` among its
    lowercased words (no 1-letter words, no apostrophes), case matched to the word replaced."""

    def __init__(self, lines: list[Line], window: int = 10):
        words, _ = word_ranks(lines)
        self.words = [w for w in words if len(w) > 1 and "'" not in w]
        self.rank = {w: r for r, w in enumerate(self.words)}
        self.window = window

    def __call__(self, words: list[str], rng: random.Random) -> list[str] | None:
        spots = []
        for i, w in enumerate(words):
            m = _CORE.match(w)
            if m and m.group(2).lower() in self.rank:
                spots.append((i, m))
        if not spots:
            return None
        i, m = rng.choice(spots)
        core = m.group(2)
        r = self.rank[core.lower()]
        near = self.words[max(0, r - self.window) : r + self.window + 1]
        new = match_case(rng.choice([w for w in near if w != core.lower()]), core)
        if core.isupper() and len(core) > 1:
            new = new.upper()
        out = list(words)
        out[i] = m.group(1) + new + m.group(3)
        return out


class Endings:
    """Second halves of lines by token count: a line's ending replaced by another speech's
    ending of the same token count (counted after a space, as it follows the first half)."""

    def __init__(self, lines: list[Line], budget: Budget):
        self.budget = budget
        self.by_len: dict[int, list[tuple[str, int]]] = {}
        for ln in lines:
            words = ln.text.split(" ")
            tail = " ".join(words[len(words) // 2 :])
            self.by_len.setdefault(budget.n(" " + tail), []).append((tail, ln.block))

    def __call__(self, words: list[str], line: Line, rng: random.Random) -> list[str] | None:
        half = len(words) // 2
        tail = " ".join(words[half:])
        pool = self.by_len.get(self.budget.n(" " + tail), [])
        pool = sorted({t for t, blk in pool if blk != line.block and t.lower() != tail.lower()})
        if not pool:
            return None
        return words[:half] + rng.choice(pool).split(" ")


def minimal_pair(real: list[str], fake: list[str], rng: random.Random) -> dict:
    """The doc of a pair: context = the shared leading words (with a trailing space, which
    lm-eval moves into the continuation), choices = the rest of each version in random order."""
    k = 0
    while k < min(len(real), len(fake)) and real[k] == fake[k]:
        k += 1
    context = " ".join(real[:k]) + " " if k else ""
    item = mc_item(context, [" ".join(real[k:]), " ".join(fake[k:])], rng)
    return item | {"corruption": " ".join(fake)}


def minimal_pair_items(
    lines: list[Line], budget: Budget, rng: random.Random, corrupt: Corruption, min_words: int = 4
) -> Iterator[Item]:
    """One pair per usable line (at least `min_words` words), in a seeded random order: the
    corruption is redrawn until both versions have the same token count (up to MAX_TRIES, else
    the line is skipped) and the line fits the budget."""
    for i in shuffled(len(lines), rng):
        line = lines[i]
        words = line.text.split(" ")
        if len(words) < min_words:
            continue
        n_real = budget.n(line.text)
        if n_real + MARGIN > budget.max_tokens:
            continue
        tried: set[tuple[str, ...]] = set()
        for _ in range(MAX_TRIES):
            fake = corrupt(words, line, rng)
            if fake is None or tuple(fake) in tried:  # none, or no new draw (deterministic)
                break
            tried.add(tuple(fake))
            if fake != words and budget.n(" ".join(fake)) == n_real:
                yield minimal_pair(words, fake, rng), frozenset({line.text})
                break


def split_items(items: Iterator[Item], n_test: int, n_train: int) -> tuple[list, list]:
    """The first `n_test` items, then `n_train` items made from none of the test items' lines."""
    test, train, used = [], [], set()
    for doc, sources in items:
        if len(test) < n_test:
            test.append(doc)
            used |= sources
        elif not sources & used:
            train.append(doc)
            if len(train) == n_train:
                break
    return test, train


# ------------------------------------------------------------------ writing ---
LOADER_SOURCE = '''"""Generated by sinkprune.evaluation.tasks: the `custom_dataset` of the task YAMLs here.

Loads the JSONL files named in a YAML's dataset_kwargs.data_files relative to this folder, so
the tasks work from any working directory and after the folder is moved.
"""

from pathlib import Path

import datasets


def load(data_files, **metadata):
    here = Path(__file__).resolve().parent
    files = {split: str(here / name) for split, name in data_files.items()}
    return datasets.load_dataset("json", data_files=files)
'''


def task_yaml(name: str) -> str:
    """lm-eval task config (JSON flow style, valid YAML; keeps quoting of newlines exact) whose
    data files are `{name}.{train,test}.jsonl` next to it, loaded by `local_data.load`."""
    cfg = {
        "task": name,
        "custom_dataset": "@LOADER@",
        "dataset_kwargs": {
            "data_files": {"train": f"{name}.train.jsonl", "test": f"{name}.test.jsonl"}
        },
        "training_split": "train",
        "test_split": "test",
        "fewshot_split": "train",
        "doc_to_text": "context",
        "fewshot_delimiter": "\n\n",
        "metadata": {"version": 2.0, "chance": CHANCE[name]},
    }
    if name == COMPLETE_LINE:
        cfg |= {
            "output_type": "generate_until",
            "doc_to_target": "target",
            "target_delimiter": "",
            "generation_kwargs": {"until": ["\n"], "do_sample": False},
            "metric_list": [
                {
                    "metric": "exact_match",
                    "aggregation": "mean",
                    "higher_is_better": True,
                    "regexes_to_ignore": ["^\\s+", "\\s+$"],
                    "ignore_punctuation": True,
                }
            ],
        }
    else:
        delimiter = {NEXT_LINE: "\n", LAST_WORD: " "}.get(name, "")  # pairs: space in context
        cfg |= {
            "output_type": "multiple_choice",
            "doc_to_choice": "choices",
            "doc_to_target": "label",
            "target_delimiter": delimiter,
            "metric_list": [
                {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
            ],
        }
    body = json.dumps(cfg, indent=2).replace('"@LOADER@"', f"!function {LOADER}.load")
    return f"# generated by sinkprune.evaluation.tasks; do not edit\n{body}\n"


def write_text(path: Path, text: str) -> None:
    """Atomic write (tmp file, then rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def readme(n_items: dict[str, int], seed: int, source: str, max_tokens: int) -> str:
    def kind(t: str) -> str:
        if t == COMPLETE_LINE:
            return "generation"
        return "minimal pair" if t in MINIMAL_PAIRS else "multiple choice"

    rows = "\n".join(
        f"| `{t}` | {kind(t)} | {METRIC[t]} | {CHANCE[t]:.0%} | {n_items[t]} | {DESCRIPTION[t]} |"
        for t in LOCAL_TASKS
    )
    return f"""# Local evaluation tasks

Generated by rule `local_tasks` (`sinkprune.evaluation.tasks`) from `{source}` with seed {seed};
every item fits in {max_tokens} tokens of the project tokenizer. Load with
`lm_eval --include_path <this dir>` (offline: HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1); the YAMLs
load their JSONL files through `{LOADER}.py` from this folder, wherever it is.

| task | type | metric | chance | items | what is compared |
|---|---|---|---|---|---|
{rows}

Minimal pairs (easy to hard as listed): the words both versions share at the start are the
context, the rest of each version is a choice (BLiMP's one-prefix method), and both choices
have the same number of tokens. The corrupted line is also stored in each doc (`corruption`).
The few-shot pool (`*.train.jsonl`) uses no corpus line of the test items.
"""


def make_local_tasks(
    test_txt: str | Path,
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    n_items: int = 200,
    seed: int = 0,
    max_tokens: int = 64,
    gen_tokens: int = 8,
) -> dict[str, Path]:
    """Write `{task}.yaml`, `{task}.{train,test}.jsonl`, `local_data.py` and README.md into
    `out_dir` for every task of LOCAL_TASKS.

    Returns {task: yaml path}. Raises ValueError (naming evaluation.local_tasks.n_items) when
    the test split has too few usable items.
    """
    from sinkprune.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    budget = Budget(lambda s: tok(s, add_special_tokens=False)["input_ids"], max_tokens)
    lines = corpus_lines(Path(test_txt).read_text(encoding="utf-8"))
    log.info("%d spoken lines in %s", len(lines), test_txt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    substitute, endings = Substitutes(lines), Endings(lines, budget)
    pairs: dict[str, tuple[Corruption, int]] = {  # corruption, min words per line
        SHUFFLE: (lambda w, ln, rng: shuffle_words(w, rng), MIN_REORDER_WORDS),
        REVERSE: (lambda w, ln, rng: w[::-1], MIN_REORDER_WORDS),
        SWAP: (lambda w, ln, rng: swap_words(w, rng, adjacent=False), 4),
        ADJACENT_SWAP: (lambda w, ln, rng: swap_words(w, rng, adjacent=True), 4),
        SUBSTITUTE: (lambda w, ln, rng: substitute(w, rng), 4),
        LINE_ENDING: (endings, 4),
    }
    builders = {
        NEXT_LINE: partial(next_line_items, lines, budget),
        LAST_WORD: partial(last_word_items, lines, budget),
        COMPLETE_LINE: partial(complete_line_items, lines, budget, gen_tokens=gen_tokens),
    } | {
        name: partial(minimal_pair_items, lines, budget, corrupt=c, min_words=k)
        for name, (c, k) in pairs.items()
    }
    paths, counts = {}, {}
    write_text(out / f"{LOADER}.py", LOADER_SOURCE)
    for name in LOCAL_TASKS:
        rng = random.Random(f"{seed}:{name}")
        test, train = split_items(builders[name](rng), n_items, FEWSHOT_POOL)
        if len(test) < n_items or len(train) < FEWSHOT_POOL:
            raise ValueError(
                f"{name}: only {len(test)} test and {len(train)} few-shot items from "
                f"{test_txt} (max {max_tokens} tokens); lower evaluation.local_tasks.n_items "
                f"(is {n_items}) or use a larger test split"
            )
        write_jsonl(out / f"{name}.test.jsonl", test)
        write_jsonl(out / f"{name}.train.jsonl", train)
        paths[name] = out / f"{name}.yaml"
        write_text(paths[name], task_yaml(name))
        counts[name] = len(test)
        log.info("%s: %d test and %d few-shot items", name, len(test), len(train))
    write_text(out / "README.md", readme(counts, seed, Path(test_txt).name, max_tokens))
    return paths
