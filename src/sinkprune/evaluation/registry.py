"""What an lm-eval task name means, known offline and fast enough for DAG-build validation.

lm-eval's own `TaskManager` parses every one of its ~14 000 task YAMLs (20–40 s). Config
validation needs far less: which names exist (tasks, groups, tags) and, for the few names a
config lists, their output type, metrics and filters. The name index is a regex scan of the
YAML files (about 2 s), cached per lm-eval version under `$XDG_CACHE_HOME/sinkprune/`; a listed
task's YAML (with its `include:` chain) is then parsed on its own. Local sinkprune tasks are
described by `sinkprune.evaluation.tasks.task_yaml`, the function that writes them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

#: lm-eval's default metrics per output type when a task has no metric_list (lm_eval.api.task)
DEFAULT_METRICS = {
    "loglikelihood": ["perplexity", "acc"],
    "loglikelihood_rolling": ["word_perplexity", "byte_perplexity", "bits_per_byte"],
    "multiple_choice": ["acc", "acc_norm"],
    "generate_until": ["exact_match"],
}

_NAME = re.compile(r"^(task|group):[ \t]*([A-Za-z0-9_.\-]+)[ \t]*(?:#.*)?$", re.M)
_TAG = re.compile(r"^tag:[ \t]*(?:\[(?P<inline>[^\]]*)\]|(?P<one>[A-Za-z0-9_.\-]+))?[ \t]*$", re.M)
_LIST_ITEM = re.compile(r"^[ \t]+-[ \t]+([A-Za-z0-9_.\-]+)")


@dataclass
class TaskInfo:
    """What the config's validation needs to know of one task, group or tag."""

    name: str
    kind: str  # "task", "group" or "tag"
    source: str  # the YAML it comes from (or "sinkprune local task")
    output_type: str | None = None
    metrics: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=lambda: ["none"])
    members: list[str] = field(default_factory=list)  # tasks of a tag / group


class _AnyTagLoader(yaml.SafeLoader):
    """SafeLoader that reads lm-eval's `!function module.fn` tags as plain strings."""


_AnyTagLoader.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix}")


def tasks_dir() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).parent / "tasks"


def _cache_file() -> Path:
    from importlib.metadata import version

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sinkprune"
    return root / f"lm_eval-{version('lm_eval')}-task-index.json"


def scan_names(root: Path) -> dict[str, dict[str, list[str]]]:
    """{"task"|"group"|"tag": {name: [yaml path relative to root]}} by a regex scan."""
    index: dict[str, dict[str, list[str]]] = {"task": {}, "group": {}, "tag": {}}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith((".yaml", ".yml")):
                continue
            path = Path(dirpath) / f
            rel = str(path.relative_to(root))
            text = path.read_text(encoding="utf-8", errors="replace")
            for kind, name in _NAME.findall(text):
                index[kind].setdefault(name, []).append(rel)
            for m in _TAG.finditer(text):
                if m.group("inline") is not None:
                    tags = [t.strip() for t in m.group("inline").split(",") if t.strip()]
                elif m.group("one"):
                    tags = [m.group("one")]
                else:  # a block list on the following lines
                    tags = []
                    for line in text[m.end() + 1 :].splitlines():
                        item = _LIST_ITEM.match(line)
                        if not item:
                            break
                        tags.append(item.group(1))
                for tag in tags:
                    index["tag"].setdefault(tag, []).append(rel)
    return index


@lru_cache(maxsize=1)
def name_index() -> dict[str, dict[str, list[str]]]:
    """The name index of the installed lm-eval, from the cache file or a fresh scan."""
    cache = _cache_file()
    root = tasks_dir()
    try:
        data = json.loads(cache.read_text())
        if data.get("root") == str(root):
            return data["index"]
    except (OSError, ValueError, KeyError):
        pass
    index = scan_names(root)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"root": str(root), "index": index}))
        tmp.replace(cache)
    except OSError:
        pass  # a read-only home: scan again next time
    return index


def _load_with_includes(path: Path, depth: int = 0) -> dict:
    """A task YAML merged over its `include:` chain (the including file wins), as lm-eval does."""
    cfg = yaml.load(path.read_text(encoding="utf-8"), Loader=_AnyTagLoader) or {}
    include = cfg.pop("include", None)
    if include and depth < 10:
        base = _load_with_includes(path.parent / include, depth + 1)
        cfg = {**base, **cfg}
    return cfg


def _metrics_of(cfg: dict) -> tuple[str | None, list[str], list[str]]:
    output_type = cfg.get("output_type", "generate_until")
    metrics = [m["metric"] for m in cfg.get("metric_list", []) if isinstance(m, dict)]
    if not metrics:
        metrics = list(DEFAULT_METRICS.get(output_type, []))
    filters = [f["name"] for f in cfg.get("filter_list", []) if isinstance(f, dict)] or ["none"]
    return output_type, metrics, filters


def local_task_info(name: str) -> TaskInfo:
    """A sinkprune local task, described by the YAML its generator writes."""
    from .tasks import task_yaml

    cfg = yaml.load(task_yaml(name), Loader=_AnyTagLoader)
    output_type, metrics, filters = _metrics_of(cfg)
    return TaskInfo(name, "task", "sinkprune local task", output_type, metrics, filters)


def registry_task_info(name: str) -> TaskInfo | None:
    """An lm-eval task, group or tag by name, or None when lm-eval does not know it."""
    index = name_index()
    root = tasks_dir()
    if name in index["task"]:
        rel = index["task"][name][0]
        cfg = _load_with_includes(root / rel)
        output_type, metrics, filters = _metrics_of(cfg)
        return TaskInfo(name, "task", rel, output_type, metrics, filters)
    if name in index["group"]:
        rel = index["group"][name][0]
        cfg = _load_with_includes(root / rel)
        members = cfg.get("task") or []
        members = [m if isinstance(m, str) else m.get("task", "?") for m in members]
        agg = [m["metric"] for m in cfg.get("aggregate_metric_list", []) if isinstance(m, dict)]
        return TaskInfo(name, "group", rel, None, agg, ["none"], members)
    if name in index["tag"]:
        members = sorted(
            t for t, files in index["task"].items() if any(f in index["tag"][name] for f in files)
        )
        return TaskInfo(name, "tag", index["tag"][name][0], None, [], ["none"], members)
    return None


def close_names(name: str, n: int = 3) -> list[str]:
    """Known lm-eval names closest to `name` (for 'did you mean')."""
    import difflib

    index = name_index()
    known = [*index["task"], *index["group"]]
    return difflib.get_close_matches(name, known, n=n, cutoff=0.75)
