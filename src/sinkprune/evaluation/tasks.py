"""Local lm-eval tasks built from the corpus test split (rule `local_tasks`), fully offline.

- `shakespeare_next_line` (multiple choice): given a line, pick the true next line of the same
  speech among it and 3 lines of the same token length from other speeches. Chance 25%.
- `shakespeare_last_word` (multiple choice): given the previous line and a line without its last
  word, pick the true last word among it and 3 words of similar corpus frequency. Chance 25%.
- `shakespeare_complete_line` (generation, exact match): given the previous line and the first
  part of a line, generate the rest of the line (up to the newline). Chance ≈ 0.

Every item fits in `max_tokens` tokens of the project tokenizer (context + longest answer, or
context + `gen_tokens` for generation): contexts lose leading words, and next_line's context and
choices are cut to half the budget each (contexts keep their end, choices their start). Each task is a YAML with `dataset_path: json` and
ABSOLUTE `data_files` (lm-eval resolves relative paths from the working directory), a test JSONL
(`n_items`) and a train JSONL (few-shot pool, disjoint items). Importing this module is cheap.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

NEXT_LINE, LAST_WORD, COMPLETE_LINE = (
    "shakespeare_next_line",
    "shakespeare_last_word",
    "shakespeare_complete_line",
)
LOCAL_TASKS = (NEXT_LINE, LAST_WORD, COMPLETE_LINE)
CHANCE = {NEXT_LINE: 0.25, LAST_WORD: 0.25, COMPLETE_LINE: 0.0}
METRIC = {NEXT_LINE: "acc", LAST_WORD: "acc", COMPLETE_LINE: "exact_match"}
N_CHOICES = 4
FEWSHOT_POOL = 20
MARGIN = 2  # tokens kept free for delimiters
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


def next_line_items(lines: list[Line], budget: Budget, rng: random.Random, need: int) -> list[dict]:
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
    items = []
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
            items.append(mc_item(context, choices, rng))
            if len(items) == need:
                break
    return items


def last_word_items(lines: list[Line], budget: Budget, rng: random.Random, need: int) -> list[dict]:
    """Context = previous line + the line without its last word (leading words dropped to fit)."""
    words, rank = word_ranks(lines)
    items = []
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
            items.append(mc_item(context, choices, rng))
            if len(items) == need:
                break
    return items


def complete_line_items(
    lines: list[Line], budget: Budget, rng: random.Random, need: int, gen_tokens: int
) -> list[dict]:
    """Context = previous line + the line's start (leading words dropped to fit), target = the
    line's last 1-3 words (with their newline within `gen_tokens`)."""
    items = []
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
            items.append({"context": context, "target": target})
            if len(items) == need:
                break
    return items


def task_yaml(name: str, train: Path, test: Path) -> str:
    """lm-eval task config (JSON is valid YAML; keeps quoting of newlines exact)."""
    cfg = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"train": str(train), "test": str(test)}},
        "training_split": "train",
        "test_split": "test",
        "fewshot_split": "train",
        "doc_to_text": "context",
        "fewshot_delimiter": "\n\n",
        "metadata": {"version": 1.0, "chance": CHANCE[name]},
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
        cfg |= {
            "output_type": "multiple_choice",
            "doc_to_choice": "choices",
            "doc_to_target": "label",
            "target_delimiter": "\n" if name == NEXT_LINE else " ",
            "metric_list": [
                {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
            ],
        }
    return f"# generated by sinkprune.evaluation.tasks; do not edit\n{json.dumps(cfg, indent=2)}\n"


def write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def readme(n_items: dict[str, int], seed: int, source: str, max_tokens: int) -> str:
    rows = "\n".join(
        f"| `{t}` | {'generation' if t == COMPLETE_LINE else 'multiple choice'} | "
        f"{METRIC[t]} | {CHANCE[t]:.0%} | {n_items[t]} |"
        for t in LOCAL_TASKS
    )
    return f"""# Local evaluation tasks

Generated by rule `local_tasks` (`sinkprune.evaluation.tasks`) from `{source}` with seed {seed};
every item fits in {max_tokens} tokens of the project tokenizer. Load with
`lm_eval --include_path <this dir>` (offline: HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1).

| task | type | metric | chance | items |
|---|---|---|---|---|
{rows}

- next_line: the true next line of the speech vs 3 lines with the same number of tokens (or
  the nearest, within 2) from other speeches (4 choices, chance 25%).
- last_word: the true last word of a line vs 3 words of similar corpus frequency (rank ±10),
  with the previous line as extra context (4 choices, chance 25%).
- complete_line: generate the last 1-3 words of a line given the previous line and its start;
  exact match ignoring surrounding whitespace and punctuation (chance ≈ 0%).
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
    """Write `{task}.yaml`, `{task}.{train,test}.jsonl` and README.md into `out_dir`.

    Returns {task: yaml path}. Raises ValueError (naming evaluation.local_tasks.n_items) when
    the test split has too few usable items.
    """
    from sinkprune.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    budget = Budget(lambda s: tok(s, add_special_tokens=False)["input_ids"], max_tokens)
    lines = corpus_lines(Path(test_txt).read_text(encoding="utf-8"))
    log.info("%d spoken lines in %s", len(lines), test_txt)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    need = n_items + FEWSHOT_POOL
    builders = {
        NEXT_LINE: lambda rng: next_line_items(lines, budget, rng, need),
        LAST_WORD: lambda rng: last_word_items(lines, budget, rng, need),
        COMPLETE_LINE: lambda rng: complete_line_items(lines, budget, rng, need, gen_tokens),
    }
    paths, counts = {}, {}
    for i, (name, build) in enumerate(builders.items()):
        items = build(random.Random(seed * 1000 + i))
        if len(items) < n_items + 1:
            raise ValueError(
                f"{name}: only {len(items)} usable items in {test_txt} (max {max_tokens} tokens); "
                f"lower evaluation.local_tasks.n_items (is {n_items}) or use a larger test split"
            )
        test, train = items[:n_items], items[n_items : n_items + FEWSHOT_POOL]
        write_jsonl(out / f"{name}.test.jsonl", test)
        write_jsonl(out / f"{name}.train.jsonl", train)
        yaml_path = out / f"{name}.yaml"
        yaml_path.write_text(
            task_yaml(name, out / f"{name}.train.jsonl", out / f"{name}.test.jsonl")
        )
        paths[name], counts[name] = yaml_path, len(test)
        log.info("%s: %d test and %d few-shot items", name, len(test), len(train))
    (out / "README.md").write_text(readme(counts, seed, str(test_txt), max_tokens))
    return paths
