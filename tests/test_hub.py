"""sinkprune.hub without the network: the hub client is replaced by a fake that copies fixtures."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest

from sinkprune import hub

FIXTURES = Path(__file__).parent / "fixtures"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_checkpoint(path: Path, fixture: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / fixture, path / "config.json")
    (path / "model-00001-of-00001.safetensors").write_bytes(b"")


@pytest.mark.parametrize(
    "fixture, family",
    [("llada-8b-base.config.json", "llada"), ("dream-v0-base-7b.config.json", "dream")],
)
def test_check_checkpoint_accepts_the_family(tmp_path, fixture, family):
    fake_checkpoint(tmp_path, fixture)
    assert hub.check_checkpoint(tmp_path, family)["mask_token_id"] in {126336, 151666}


def test_check_checkpoint_names_the_key(tmp_path):
    fake_checkpoint(tmp_path, "llada-8b-base.config.json")
    with pytest.raises(hub.HubError, match=r"models\.x\.family is 'dream'"):
        hub.check_checkpoint(tmp_path, "dream", key="models.x")
    (tmp_path / "model-00001-of-00001.safetensors").unlink()
    with pytest.raises(hub.HubError, match="no \\*.safetensors"):
        hub.check_checkpoint(tmp_path, "llada")


def test_download_model_records_the_resolved_commit(tmp_path, monkeypatch):
    calls = {}

    def snapshot_download(repo_id, revision, local_dir, ignore_patterns):
        calls.update(repo_id=repo_id, revision=revision, ignore=ignore_patterns)
        fake_checkpoint(Path(local_dir), "llada-8b-base.config.json")

    class FakeApi:
        def model_info(self, repo_id, revision):
            return SimpleNamespace(sha=COMMIT)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out = hub.download_model("GSAI-ML/LLaDA-8B-Base", "main", "llada", tmp_path / "m")
    assert calls["repo_id"] == "GSAI-ML/LLaDA-8B-Base" and calls["revision"] == COMMIT
    assert "*.bin" in calls["ignore"]
    meta = json.loads((out / "download.json").read_text())
    files = {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest()
        for f in out.iterdir()
        if f.name != "download.json"
    }
    assert "config.json" in files and any(name.endswith(".safetensors") for name in files)
    assert files and meta == {
        "hub_id": "GSAI-ML/LLaDA-8B-Base",
        "revision": "main",
        "commit": COMMIT,
        "files": files,  # every later load checks these (sinkprune.artifacts)
    }


def test_download_failure_names_the_key(tmp_path, monkeypatch):
    class OfflineApi:
        def model_info(self, repo_id, revision):
            raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "HfApi", OfflineApi)
    with pytest.raises(hub.HubError, match=r"models\.m\.hub_id 'a/b'.*offline"):
        hub.download_model("a/b", "main", "llada", tmp_path / "m", key="models.m")
