"""Benchmarks (`make bench`): every figure is a ratio measured side by side in one run.

Each benchmark is a module `sinkprune.bench.<name>` (names starting with `_` and `gpu_check` are
not part of `make bench`) with

    def run(quick: bool = False) -> dict

returning a JSON-serialisable dict with at least
  name      the module name
  title     one line
  shapes    what was measured on (model/tensor shapes, counts), as a dict
  rows      list of dicts (the table's rows)
  headline  one line with the ratio that matters and its goal
  markdown  the section of bench.md (a `## title` block with the table and the headline)

`quick=True` shrinks every shape so the tests can run the benchmark in seconds; numbers from a
quick run are not reported. `python -m sinkprune.bench` writes `results/bench/<name>.json` per
benchmark and `results/bench/bench.md` with every section, in name order.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pkgutil
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

EXCLUDED = {"gpu_check"}
#: Rough quiet 2-core seconds of each benchmark (`wall_seconds` in its JSON): --jobs starts the
#: longest first so that the others fill the remaining cores.
EXPECTED_SECONDS = {"agreement": 600, "sparsegpt_solve": 170, "attention_memory": 125}


def bench_names() -> list[str]:
    """The benchmark modules of this package, in name order."""
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted(n for n in names if n not in EXCLUDED)


def run_one(name: str, quick: bool = False) -> dict:
    """Import `sinkprune.bench.<name>` and run it; adds `wall_seconds` to its result."""
    module = importlib.import_module(f"{__name__}.{name}")
    start = time.perf_counter()
    result = module.run(quick=quick)
    missing = {"name", "title", "shapes", "rows", "headline", "markdown"} - set(result)
    if missing:
        raise ValueError(f"benchmark {name}: result lacks {sorted(missing)}")
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    return result


def write_markdown(out_dir: Path) -> Path:
    """bench.md from every `<name>.json` in `out_dir` (so a partial rerun keeps the others)."""
    sections = []
    for path in sorted(out_dir.glob("*.json")):
        data = json.loads(path.read_text())
        sections.append(
            data["markdown"].rstrip() + f"\n\n_({path.name}, {data['wall_seconds']} s)_\n"
        )
    text = "# sinkprune benchmarks\n\nRatios measured side by side in one run (`make bench`).\n\n"
    md = out_dir / "bench.md"
    md.write_text(text + "\n".join(sections))
    return md


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Run sinkprune's benchmarks (make bench).")
    p.add_argument("--out", default="results/bench", help="output folder")
    p.add_argument("--only", nargs="*", default=None, help="benchmark names (default: all)")
    p.add_argument("--quick", action="store_true", help="shrunk shapes (tests only)")
    p.add_argument("--jobs", type=int, default=1, help="benchmarks run at once (1 core each)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # one log line per benchmark: the stages they run would otherwise print hundreds of bars
    os.environ.setdefault("TQDM_DISABLE", "1")
    names = a.only or bench_names()
    unknown = sorted(set(names) - set(bench_names()))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; known: {bench_names()}")
    if a.jobs < 1:
        raise SystemExit(f"--jobs must be >= 1, got {a.jobs}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.jobs == 1:
        for name in names:
            _run_and_write(name, a.quick, out)
    else:
        run_parallel(names, a.quick, out, a.jobs)
    print(write_markdown(out))


def _run_and_write(name: str, quick: bool, out: Path) -> None:
    log.info("benchmark %s ...", name)
    result = run_one(name, quick=quick)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    log.info("%s: %s (%.1f s)", name, result["headline"], result["wall_seconds"])


def run_parallel(names: Sequence[str], quick: bool, out: Path, jobs: int) -> None:
    """Run the benchmarks in `jobs` worker processes (spawned: torch is not forked), the longest
    first. Every benchmark measures its ratios inside one process with 1 torch thread, both arms
    interleaved, so a neighbour on the other core slows both arms alike."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    order = sorted(names, key=lambda n: -EXPECTED_SECONDS.get(n, 0))
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init) as pool:
        futures = [pool.submit(_run_and_write, n, quick, out) for n in order]
        for fut in as_completed(futures):
            fut.result()  # a failed benchmark fails `make bench`


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker; TQDM_DISABLE comes with main's environment
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
