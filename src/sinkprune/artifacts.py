"""Checks on what a stage reads: weights against recorded sha256, parquets against their schema.

Every producer of a checkpoint records the sha256 of its files (tensors, config.json, tokenizer
files) in `prune_report.json`, `train_metrics.json` or `download.json` under the key `files`;
every consumer loads weights through `sinkprune.models.load_model`, which calls `verify_weights`
first. Parquet artifacts are
read through `read_table` / `open_parquet` with the schema their module declares. A failure raises
`ArtifactError`, whose one-line message names the file and says how to recover.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from pathlib import Path

log = logging.getLogger(__name__)

#: files in a checkpoint directory that record the sha256 of its weights, by producer
WEIGHT_RECORDS = ("prune_report.json", "train_metrics.json", "download.json")


class ArtifactError(RuntimeError):
    """A file a stage reads is missing, corrupt or not what its producer wrote; names the file."""


# ---------------------------------------------------------------- digests ---
def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checkpoint_digests(model_dir: str | Path) -> dict[str, str]:
    """{file name: sha256} of a checkpoint directory as its producer records it: the tensor files,
    config.json and the tokenizer files (every top-level file but records and dotfiles)."""
    return {
        f.name: sha256_file(f)
        for f in sorted(Path(model_dir).iterdir())
        if f.is_file() and f.name not in WEIGHT_RECORDS and not f.name.startswith(".")
    }


def read_json(path: str | Path) -> dict:
    """A JSON object from `path`, or ArtifactError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(
            f"{path}: not valid JSON ({err}); delete it and rerun the rule that writes it"
        ) from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def recorded_digests(model_dir: str | Path) -> tuple[Path, dict[str, str]] | None:
    """(record file, {tensor file: sha256}) written by the producer of `model_dir`, or None."""
    for name in WEIGHT_RECORDS:
        record = Path(model_dir) / name
        if record.is_file():
            files = read_json(record).get("files")
            if files is not None:
                if not isinstance(files, dict):
                    raise ArtifactError(f"{record}: `files` must map tensor files to sha256")
                return record, files
    return None


def verify_weights(model_dir: str | Path) -> bool:
    """Check the files of `model_dir` against the sha256 its producer recorded.

    Returns False (and logs a warning) when no producer record exists, e.g. a checkpoint copied
    in by hand; raises ArtifactError on any difference: a changed or missing recorded file, or a
    tensor file that is not recorded.
    """
    model_dir = Path(model_dir)
    found = recorded_digests(model_dir)
    if found is None:
        log.warning(
            "%s: no recorded sha256 of its weights (%s); loading it unverified",
            model_dir,
            " / ".join(WEIGHT_RECORDS),
        )
        return False
    record, files = found
    present = sorted(f.name for f in model_dir.glob("*.safetensors"))
    extra = sorted(set(present) - set(files))
    if extra:
        raise ArtifactError(
            f"{model_dir / extra[0]}: tensor file not recorded in {record}; "
            "remove it or rerun the rule that writes this checkpoint"
        )
    for name, digest in sorted(files.items()):
        path = model_dir / name
        if not path.is_file():
            raise ArtifactError(f"{path}: missing (recorded in {record}); rerun its rule")
        if sha256_file(path) != digest:
            raise ArtifactError(
                f"{path}: sha256 differs from the one recorded in {record} (corrupt or "
                "modified after it was written); delete the directory and rerun its rule"
            )
    log.info("%s: %d file(s) match %s", model_dir, len(files), record.name)
    return True


# ------------------------------------------------------------ safetensors ---
def safetensors_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} from a .safetensors header, without reading the tensors."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ValueError("shorter than its 8-byte header length")
            (n,) = struct.unpack("<Q", raw)
            size = path.stat().st_size
            if n > size - 8:
                raise ValueError(f"header length {n} exceeds the file size")
            header = json.loads(f.read(n))
        end = max((m["data_offsets"][1] for k, m in header.items() if k != "__metadata__"),
                  default=0)  # fmt: skip
        if 8 + n + end != size:
            raise ValueError(f"{size} bytes on disk, the header describes {8 + n + end}")
        return {
            name: tuple(int(d) for d in meta["shape"])
            for name, meta in header.items()
            if name != "__metadata__"
        }
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: not a readable safetensors file ({err})") from None


def checkpoint_shapes(model_dir: str | Path) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} over every *.safetensors of a checkpoint directory."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise ArtifactError(f"{model_dir}: no *.safetensors weights")
    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        shapes.update(safetensors_shapes(f))
    return shapes


def check_tensors_match(
    model_dir: str | Path, expected: dict[str, tuple[int, ...]], tied: set[str] = frozenset()
) -> None:
    """The checkpoint holds exactly the tensors the config describes: no missing, no unexpected
    key, no shape difference (a missing tensor would otherwise be randomly initialised).
    `tied` names parameters that share another's storage and need not be in the file."""
    stored = checkpoint_shapes(model_dir)
    cfg = Path(model_dir) / "config.json"
    missing = sorted(k for k in expected if k not in stored and k not in tied)
    unexpected = sorted(k for k in stored if k not in expected)
    wrong = sorted(k for k in expected if k in stored and stored[k] != tuple(expected[k]))

    def few(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

    if missing:
        raise ArtifactError(
            f"{cfg}: describes tensors the weights do not have ({few(missing)}); "
            "config.json and *.safetensors do not belong together"
        )
    if unexpected:
        raise ArtifactError(
            f"{cfg}: the weights have tensors it does not describe ({few(unexpected)}); "
            "config.json and *.safetensors do not belong together"
        )
    if wrong:
        k = wrong[0]
        raise ArtifactError(
            f"{cfg}: tensor {k} has shape {list(stored[k])} in the weights but "
            f"{list(expected[k])} by config.json ({len(wrong)} tensor(s) differ)"
        )


# ---------------------------------------------------------------- parquet ---
def open_parquet(path: str | Path, schema):
    """pyarrow ParquetFile at `path` whose columns and types are those of `schema`."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: missing")
    try:
        pf = pq.ParquetFile(path)
        got = pf.schema_arrow
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError with various texts
        raise ArtifactError(
            f"{path}: not a readable parquet file ({str(err).splitlines()[0]}); "
            "delete it and rerun the rule that writes it"
        ) from None
    if got.names != schema.names:
        raise ArtifactError(f"{path}: columns {got.names}, expected {schema.names}")
    for field in schema:
        i = got.get_field_index(field.name)
        if i < 0:
            raise ArtifactError(
                f"{path}: column {field.name!r} missing (expected columns {schema.names})"
            )
        if not got.field(i).type.equals(field.type):
            raise ArtifactError(
                f"{path}: column {field.name!r} has type {got.field(i).type}, expected {field.type}"
            )
    return pf


def read_table(path: str | Path, schema, columns: list[str] | None = None):
    """The parquet at `path` as a pyarrow Table, checked against `schema` (ArtifactError if not)."""
    pf = open_parquet(path, schema)
    try:
        return pf.read(columns=columns)
    except Exception as err:
        raise ArtifactError(
            f"{path}: corrupt parquet data ({str(err).splitlines()[0]}); "
            "delete it and rerun the rule that writes it"
        ) from None
