"""Download a hub model (`source: hub`) into `resources/models/{model}/` at execution time.

Only `download_model` jobs touch the network; building the DAG never does. The snapshot keeps the
checkpoint's own files (config.json, safetensors shards, tokenizer files); sinkprune loads them
with its own classes (`sinkprune.models.load_model`), never with remote code. `download.json`
records the hub id, the requested revision, the commit it resolved to (so a run on `main` can be
pinned afterwards) and the sha256 of each file (`files`: tensors, config.json, tokenizer), which
every load checks.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .artifacts import checkpoint_digests

log = logging.getLogger(__name__)

#: model_type in a checkpoint's config.json -> sinkprune family (models/__init__.py MODEL_TYPES)
FAMILY_OF_MODEL_TYPE = {"llada": "llada", "mmada": "llada", "Dream": "dream", "dream": "dream"}
#: weights in other formats duplicate the safetensors shards; training states are not needed
IGNORE_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.msgpack", "*.h5", "*.ckpt", "*.onnx", "*.gguf"]


class HubError(RuntimeError):
    """A hub model cannot be fetched or is not a sinkprune family; the message names the key."""


def check_checkpoint(path: str | Path, family: str, key: str = "models.<m>") -> dict:
    """Check that `path` holds a checkpoint of `family` in safetensors; return its config.json."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise HubError(f"{key}: {cfg_file} missing after download")
    cfg = json.loads(cfg_file.read_text())
    model_type = cfg.get("model_type")
    got = FAMILY_OF_MODEL_TYPE.get(model_type)
    if got is None:
        raise HubError(
            f"{key}.hub_id: model_type {model_type!r} in {cfg_file} is not a sinkprune family "
            f"(known: {sorted(FAMILY_OF_MODEL_TYPE)})"
        )
    if got != family:
        raise HubError(f"{key}.family is {family!r} but {cfg_file} has model_type {model_type!r}")
    if not any(path.glob("*.safetensors")):
        raise HubError(f"{key}.hub_id: no *.safetensors weights in {path}")
    return cfg


def download_model(
    hub_id: str, revision: str, family: str, out_dir: str | Path, key: str = "models.<m>"
) -> Path:
    """Snapshot `hub_id`@`revision` into `out_dir`, check it, write `download.json`."""
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError as err:  # pragma: no cover - transformers depends on it
        raise HubError("download_model needs huggingface_hub: pip install huggingface_hub") from err
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s@%s to %s", hub_id, revision, out_dir)
    try:
        commit = HfApi().model_info(hub_id, revision=revision).sha
        snapshot_download(
            repo_id=hub_id, revision=commit, local_dir=out_dir, ignore_patterns=IGNORE_PATTERNS
        )
    except Exception as err:
        raise HubError(
            f"{key}.hub_id {hub_id!r} (revision {revision!r}): download failed: {err}. "
            "Is the hub reachable (HF_HUB_OFFLINE unset, HF_TOKEN for gated models)?"
        ) from err
    check_checkpoint(out_dir, family, key)
    # sha256 of the weights as downloaded: every later load checks them (sinkprune.artifacts)
    meta = {
        "hub_id": hub_id,
        "revision": revision,
        "commit": commit,
        "files": checkpoint_digests(out_dir),
    }
    (out_dir / "download.json").write_text(json.dumps(meta, indent=2) + "\n")
    if revision != commit:
        log.warning(
            "%s: revision %r resolved to commit %s; pin it in the config", key, revision, commit
        )
    return out_dir
