"""What rule `evaluate` calls: one checkpoint, every configured task, then heldout.json.

The model is loaded once; each task gets its own settings (num_fewshot, cfg, mc_num, ...) and
its own `lm_eval.simple_evaluate` call, and its results JSON is written to the rule's fixed
output path (lm-eval's --output_path names files by timestamp). Files are written atomically.

A task JSON keeps lm-eval's result blocks and a compact per-item record of the headline metric
(`items`: ids `{task}/{doc_id}` and values) for paired statistics between variants
(sinkprune.statistics); nothing in it depends on the wall clock, so a killed and resumed run
writes the same bytes. Timings go to the log.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from .tasks import CHANCE, LOCAL_TASKS

log = logging.getLogger(__name__)

MODEL_SETTINGS = ("mc_num", "batch_size", "cfg", "gen_length", "steps", "block_length")
RESULT_KEYS = ("results", "groups", "group_subtasks", "configs", "versions", "n-shot")
RESULT_KEYS += ("higher_is_better", "n-samples", "config")


def write_json(path: str | Path, payload: Any) -> None:
    """Atomic JSON write (tmp file in the same folder, then rename)."""
    from lm_eval.utils import handle_non_serializable

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=handle_non_serializable) + "\n")
    os.replace(tmp, path)


def checkpoint_dir(checkpoint: str | Path) -> Path:
    """The model dir of a checkpoint given as the dir or a file in it (prune_report.json)."""
    p = Path(checkpoint)
    d = p.parent if p.is_file() else p
    if not (d / "config.json").is_file():
        raise FileNotFoundError(f"{d}: no config.json (expected a checkpoint dir for {checkpoint})")
    return d


def stderr_value(x: Any) -> float | None:
    """lm-eval's stderr as a float; None where it has none ('N/A')."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def per_item(samples: dict[str, list[dict]], metric_key: str) -> dict[str, list]:
    """{'metric', 'ids', 'values'} of `metric_key` ('acc,none': metric 'acc' under filter
    'none') from lm-eval's logged samples of every (sub)task, sorted by id."""
    metric, _, filt = metric_key.partition(",")
    pairs = []
    for task, rows in samples.items():
        for row in rows:
            if row.get("filter", "none") == filt and metric in row:
                pairs.append((f"{task}/{row['doc_id']}", float(row[metric])))
    if not pairs:
        raise KeyError(f"lm-eval logged no per-item {metric_key!r} for {sorted(samples)}")
    pairs.sort(key=lambda p: (p[0].rsplit("/", 1)[0], int(p[0].rsplit("/", 1)[1])))
    return {"metric": metric_key, "ids": [i for i, _ in pairs], "values": [v for _, v in pairs]}


def task_payload(name: str, res: dict, settings: dict, model_dir: Path) -> dict:
    """lm-eval's result blocks for one task plus the settings, a headline `score` and its
    per-item values (`items`)."""
    out = {k: res[k] for k in RESULT_KEYS if k in res}
    metric = settings.get("metric", "acc")
    scores = res["results"].get(name, {})
    if "," in metric:  # metric with its filter, e.g. "exact_match,flexible-extract"
        key = metric if metric in scores else None
    elif f"{metric},none" in scores:
        key = f"{metric},none"
    else:
        key = next((k for k in scores if k.split(",")[0] == metric), None)
    if key is None:
        raise KeyError(
            f"evaluation.tasks.{name}.metric: {metric!r} not among the task's metrics "
            f"{sorted(k for k in scores if ',' in k)}"
        )
    return {
        "task": name,
        "checkpoint": str(model_dir),
        "metric": metric,
        "score": scores[key],
        "score_stderr": stderr_value(scores.get(key.replace(",", "_stderr,", 1))),
        "chance": CHANCE.get(name),
        "settings": settings,
        **out,
        "items": per_item(res.get("samples", {}), key),
    }


def evaluate_checkpoint(
    checkpoint: str | Path,
    task_outputs: list[str | Path],
    tasks: dict[str, dict],
    heldout_output: str | Path | None,
    heldout: dict,
    test_txt: str | Path,
    task_files: list[str | Path] | None = None,
    seed: int = 0,
    device: str = "auto",
    dtype: str = "auto",
    threads: int = 1,
    require_gpu: bool = False,
) -> None:
    """Evaluate one checkpoint on every task of `task_outputs` (named `{task}.json`), each with
    its `tasks[name]` settings, and write heldout.json (method.md §7, heldout.py) unless
    `heldout_output` is None (evaluation.job_per: task runs it as its own job).

    `task_files`: the local task YAMLs (their folder becomes lm-eval's include_path), or None.
    `require_gpu`: fail early when CUDA is not visible (hub-sized models; Snakemake silently
    drops a `gpu=1` request where no GPU is declared).
    """
    import torch

    if require_gpu and not torch.cuda.is_available():
        raise RuntimeError(
            f"evaluating {checkpoint} needs a GPU (the job asked for gpu=1) but torch sees none; "
            "run on a GPU node (e.g. --profile profiles/slurm) or declare the GPU to Snakemake"
        )
    torch.set_num_threads(max(1, int(threads)))
    names = [Path(p).stem for p in task_outputs]
    missing = [n for n in names if n not in tasks]
    if missing:
        raise KeyError(f"evaluation.tasks has no settings for {missing}")
    tasks_dir = Path(task_files[0]).resolve().parent if task_files else None
    all_local = tasks_dir is not None and all(n in LOCAL_TASKS for n in names)
    if all_local:  # before datasets/lm_eval are imported: they read these at import time
        os.environ["HF_DATASETS_OFFLINE"] = os.environ["HF_HUB_OFFLINE"] = "1"
    import lm_eval
    from lm_eval.tasks import TaskManager

    from .heldout import heldout_eval
    from .lm import SinkpruneDLM

    model_dir = checkpoint_dir(checkpoint)
    lm = SinkpruneDLM(pretrained=str(model_dir), seed=seed, device=device, dtype=dtype)
    log.info("loaded %s on %s", model_dir, lm.device)
    include = str(tasks_dir) if tasks_dir else None
    # indexing lm-eval's built-in tasks takes 20-40 s: only when there are tasks to run
    manager = TaskManager(include_path=include, include_defaults=not all_local) if names else None
    for name, out_path in zip(names, task_outputs, strict=True):
        settings = dict(tasks[name])
        lm.set_settings(**{k: settings[k] for k in MODEL_SETTINGS if k in settings})
        start = time.time()
        res = lm_eval.simple_evaluate(
            model=lm,
            tasks=[name],
            num_fewshot=settings.get("num_fewshot"),
            limit=settings.get("limit"),
            task_manager=manager,
            log_samples=True,  # per-item metrics for paired CIs; only `items` is kept
            bootstrap_iters=1000,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
        payload = task_payload(name, res, settings, model_dir)
        write_json(out_path, payload)
        log.info(
            "%s: %s = %.4f ± %.4f (%d items, %.1f s) -> %s",
            name,
            payload["metric"],
            payload["score"],
            payload["score_stderr"] or 0.0,
            len(payload["items"]["ids"]),
            time.time() - start,
            out_path,
        )
    if heldout_output is None:
        return
    start = time.time()
    result = heldout_eval(
        lm.adapter,
        lm.tokenizer,
        test_txt,
        n_sequences=heldout["n_sequences"],
        seqlen=heldout["seqlen"],
        t_grid=list(heldout["t_grid"]),
        mc_num=heldout.get("mc_num", 32),
        batch_size=heldout.get("batch_size", 8),
        seed=seed,
        device=lm.device,
    )
    result["checkpoint"] = str(model_dir)
    write_json(heldout_output, result)
    log.info(
        "heldout: %.4f bits/token (%.1f s) -> %s",
        result["bits_per_token"],
        time.time() - start,
        heldout_output,
    )
