"""Artifacts verified before use (sinkprune.artifacts, sinkprune.models.load_model): weights
against the sha256 their producer recorded, config.json against the tensors, parquets against
their schema; each failure is one line naming the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from sinkprune.artifacts import (
    ArtifactError,
    checkpoint_digests,
    open_parquet,
    read_json,
    read_table,
    verify_weights,
)
from sinkprune.calibration import SAMPLES_SCHEMA, load_samples, write_samples
from sinkprune.models import LLaDAConfig, LLaDAModelLM, load_model

TINY = dict(d_model=16, n_layers=2, n_heads=2, mlp_hidden_size=24, vocab_size=40,
            max_sequence_length=16, mask_token_id=39)  # fmt: skip


def checkpoint(path: Path, record: str | None = "prune_report.json") -> Path:
    """A tiny llada checkpoint whose producer recorded the sha256 of its weights in `record`."""
    torch.manual_seed(0)
    LLaDAModelLM(LLaDAConfig(**TINY)).save_pretrained(path)
    if record:
        (path / record).write_text(
            json.dumps({"method": "dense", "files": checkpoint_digests(path)})
        )
    return path


def scribble(path: Path, offset: int, n: int = 64) -> None:
    """Random bytes written into a file in place (the issue's corruption)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(np.random.default_rng(0).bytes(n))


def set_config(path: Path, **fields) -> None:
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**cfg, **fields}))


# ------------------------------------------------------------------ weights ---
@pytest.mark.parametrize("record", ["prune_report.json", "train_metrics.json", "download.json"])
def test_intact_checkpoint_verifies_and_loads(tmp_path, record):
    path = checkpoint(tmp_path / "m", record)
    assert verify_weights(path) is True
    assert isinstance(load_model(path), LLaDAModelLM)


@pytest.mark.parametrize("where", ["data", "header"])
def test_random_bytes_in_weights_are_caught_by_the_recorded_sha256(tmp_path, where):
    path = checkpoint(tmp_path / "m")
    weights = path / "model.safetensors"
    scribble(weights, weights.stat().st_size // 2 if where == "data" else 8)
    with pytest.raises(ArtifactError) as info:
        load_model(path)
    assert str(info.value).startswith(f"{weights}: sha256 differs from the one recorded in")
    assert "\n" not in str(info.value)


def test_unrecorded_weights_still_fail_on_a_broken_file(tmp_path):
    """Without a producer record (a checkpoint copied in by hand) a broken header or a short
    file is still an error naming the file, never a half-loaded model."""
    path = checkpoint(tmp_path / "m", record=None)
    weights = path / "model.safetensors"
    assert verify_weights(path) is False  # logged as unverified
    scribble(weights, 0, 8)
    with pytest.raises(ArtifactError, match=f"{weights}: not a readable safetensors file"):
        load_model(path)
    path = checkpoint(tmp_path / "short", record=None)
    weights = path / "model.safetensors"
    os.truncate(weights, weights.stat().st_size - 100)
    with pytest.raises(ArtifactError, match="bytes on disk, the header describes"):
        load_model(path)


def test_missing_and_unrecorded_tensor_files(tmp_path):
    path = checkpoint(tmp_path / "m")
    (path / "extra.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    with pytest.raises(ArtifactError, match="extra.safetensors: tensor file not recorded"):
        load_model(path)
    (path / "extra.safetensors").unlink()
    (path / "model.safetensors").unlink()
    with pytest.raises(ArtifactError, match=r"model.safetensors: missing \(recorded in"):
        load_model(path)


def test_corrupt_record_names_the_file(tmp_path):
    path = checkpoint(tmp_path / "m")
    (path / "prune_report.json").write_text('{"files": {')
    with pytest.raises(ArtifactError, match="prune_report.json: not valid JSON"):
        load_model(path)
    with pytest.raises(ArtifactError, match="missing"):
        read_json(path / "nope.json")


# --------------------------------------------------- config.json vs tensors ---
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"n_layers": 3}, "describes tensors the weights do not have"),  # the case
        ({"n_layers": 1}, "the weights have tensors it does not describe"),
        ({"mlp_hidden_size": 32}, "has shape"),
        ({"weight_tying": True}, "the weights have tensors it does not describe"),
        ({"include_bias": True}, "describes tensors the weights do not have"),
    ],
    ids=["one-more-layer", "one-less-layer", "wider-mlp", "tying-on-untied", "bias-flag"],
)
def test_config_that_does_not_match_the_tensors_is_refused(tmp_path, fields, message):
    """No tensor is ever randomly initialised or dropped (transformers only warns): caught by the
    recorded sha256 of config.json, and without a record by the tensor check."""
    path = checkpoint(tmp_path / "m")
    set_config(path, **fields)
    with pytest.raises(ArtifactError, match="config.json: sha256 differs from the one recorded"):
        load_model(path)
    path = checkpoint(tmp_path / "unrecorded", record=None)
    set_config(path, **fields)
    with pytest.raises(ArtifactError) as info:
        load_model(path)
    assert str(info.value).startswith(f"{path / 'config.json'}: ") and message in str(info.value)


def test_recorded_config_and_tokenizer_files_are_checked_too(tmp_path):
    """A changed rope_theta changes no tensor shape: only the recorded sha256 can tell."""
    path = checkpoint(tmp_path / "m")
    set_config(path, rope_theta=500.0)
    with pytest.raises(ArtifactError, match="config.json: sha256 differs"):
        load_model(path)


# ------------------------------------------------------------------ parquet ---
def samples(path: Path) -> Path:
    write_samples(np.arange(12, dtype=np.int32).reshape(3, 4), path)
    return path


def test_parquet_read_through_its_schema(tmp_path):
    ids, tokens = load_samples(samples(tmp_path / "s.parquet"))
    assert ids.tolist() == [0, 1, 2] and tokens.shape == (3, 4)


@pytest.mark.parametrize("damage", ["random-bytes", "truncated", "empty"])
def test_corrupt_parquet_names_the_file(tmp_path, damage):
    path = samples(tmp_path / "s.parquet")
    if damage == "random-bytes":
        scribble(path, 4, path.stat().st_size - 8)
    elif damage == "truncated":
        os.truncate(path, path.stat().st_size // 2)
    else:
        path.write_bytes(b"")
    with pytest.raises(ArtifactError) as info:
        load_samples(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            pa.table(
                {
                    "sample_id": pa.array([0], pa.int64()),
                    "token_ids": pa.array([[1]], pa.list_(pa.int32())),
                }
            ),
            "column 'sample_id' has type int64, expected int32",
        ),  # fmt: skip
        (pa.table({"sample_id": pa.array([0], pa.int32())}), "columns ['sample_id'], expected"),
        (
            pa.table(
                {
                    "sample_id": pa.array([0], pa.int32()),
                    "token_ids": pa.array([[1]], pa.list_(pa.int32())),
                    "x": pa.array([0.5]),
                }
            ),
            "expected ['sample_id', 'token_ids']",
        ),  # fmt: skip
    ],
    ids=["wrong-type", "missing-column", "extra-column"],
)
def test_parquet_with_another_schema_is_refused(tmp_path, table, message):
    path = tmp_path / "s.parquet"
    pq.write_table(table, path)
    with pytest.raises(ArtifactError) as info:
        read_table(path, SAMPLES_SCHEMA)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    with pytest.raises(ArtifactError):
        open_parquet(path, SAMPLES_SCHEMA)


# ----------------------------------------------------- one line, no traceback ---
SCRIPT = """
import sys
from sinkprune.logs import log_to
from sinkprune.artifacts import ArtifactError
log_to(sys.argv[1])
if sys.argv[2] == "artifact":
    raise ArtifactError("results/m/pruned/dense/model.safetensors: sha256 differs")
raise ValueError("a bug")
"""


@pytest.mark.parametrize("kind", ["artifact", "bug"])
def test_job_failure_is_one_line_for_user_errors_and_a_traceback_for_bugs(tmp_path, kind):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(SCRIPT))
    log = tmp_path / "job.log"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.run([sys.executable, str(script), str(log), kind], capture_output=True,
                          text=True, env=env)  # fmt: skip
    assert proc.returncode == 1
    if kind == "artifact":
        line = "ArtifactError: results/m/pruned/dense/model.safetensors: sha256 differs"
        assert proc.stderr.strip() == line
        assert line in log.read_text()
    else:
        assert "Traceback" in proc.stderr and "ValueError: a bug" in proc.stderr
