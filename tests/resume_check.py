"""Resume check (issue "Reliability"): kill -9 a micro-config run during training, pruning and
evaluation, rerun the same command each time, and compare every result file with an
uninterrupted run; then corrupt a checkpoint and check that its consumer refuses it.

    python tests/resume_check.py [--keep DIR]      # ~3 micro runs: 5-10 minutes on 2 cores

The command is what `make run` runs: `python -m sinkprune.locks -- snakemake --cores 2 ...`.
Exit status 0 when every table, parquet and safetensors file is byte-identical and the
corrupted checkpoint fails its consumer with one line naming the file.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MICRO = REPO / ".test" / "config" / "config.yaml"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
ENV = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
       "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}  # fmt: skip
COMPARED = (".csv", ".md", ".tex", ".parquet", ".safetensors")


def command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "sinkprune.locks", "--", SNAKEMAKE, "-s", str(REPO / "Snakefile"),
            "--configfile", str(MICRO), "--cores", "2", *extra]  # fmt: skip


def workdir(root: Path, name: str) -> Path:
    work = root / name
    work.mkdir(parents=True)
    for link in ("config", "resources"):
        (work / link).symlink_to(REPO / link)
    return work


def run(work: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(*extra), cwd=work, env=ENV, capture_output=True, text=True)


def run_and_kill(work: Path, marker: str, delay: float) -> bool:
    """Start the run; kill -9 its whole process group `delay` s after a file matching `marker`
    appears (a job of that stage started). False if the run ended first."""
    proc = subprocess.Popen(command(), cwd=work, env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    while proc.poll() is None:
        if list(work.glob(marker)):
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.2)
    return False


def digests(results: Path) -> dict[str, str]:
    return {
        str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(results.rglob("*"))
        if p.is_file()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="sinkprune-resume-"))
    ok = True
    t0 = time.time()
    ref = workdir(root, "uninterrupted")
    done = run(ref)
    if done.returncode:
        print(done.stdout[-3000:], done.stderr[-3000:])
        return 1
    print(f"uninterrupted run: {time.time() - t0:.0f} s")

    work = workdir(root, "killed")
    for stage, marker, delay in [
        ("train_model", "logs/train_model/*.log", 1.0),
        ("prune", "logs/prune/*/*.log", 1.0),
        ("evaluate", "logs/evaluate/*/*.log", 3.0),
    ]:
        killed = run_and_kill(work, marker, delay)
        print(f"kill -9 during {stage}: {'killed' if killed else 'run ended before the kill'}")
    t1 = time.time()
    resumed = run(work)
    print(f"resumed with the same command: exit {resumed.returncode}, {time.time() - t1:.0f} s")
    print(
        "  "
        + "\n  ".join(line for line in resumed.stderr.splitlines() if "sinkprune.locks" in line)
    )
    if resumed.returncode:
        print(resumed.stdout[-3000:], resumed.stderr[-3000:])
        return 1

    a, b = digests(ref / "results"), digests(work / "results")
    compared = [f for f in a if f.endswith(COMPARED)]
    differ = sorted(f for f in set(a) | set(b) if a.get(f) != b.get(f))
    print(f"{len(a)} result files; {len(compared)} tables/parquets/safetensors compared")
    bad = [f for f in differ if f.endswith(COMPARED)]
    for f in differ:
        print(f"  differs: {f}")
    if bad:
        ok = False
        print(f"FAIL: {len(bad)} tables/parquets/safetensors differ")
    else:
        print(f"OK: every table, parquet and safetensors file is byte-identical ({len(differ)} "
              "other file(s) differ, listed above)")  # fmt: skip

    # a corrupted checkpoint: its consumer fails with one line naming the file
    weights = work / "results" / "tiny-dlm" / "pruned" / "dense" / "model.safetensors"
    backup = weights.read_bytes()
    with open(weights, "r+b") as f:
        f.seek(len(backup) // 2)
        f.write(os.urandom(64))
    target = "results/tiny-dlm/eval/dense/heldout.json"
    forced = run(work, "--forcerun", "evaluate", "--", target)
    lines = [line for line in (forced.stdout + forced.stderr).splitlines()
             if line.startswith("ArtifactError")]  # fmt: skip
    print(f"corrupted {weights.relative_to(work)}, forced evaluate: exit {forced.returncode}")
    print("  " + "\n  ".join(lines))
    if forced.returncode == 0 or not lines or str(weights.name) not in lines[0]:
        ok = False
        print("FAIL: the corrupted checkpoint was not refused with one line naming it")
    weights.write_bytes(backup)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(f"total {time.time() - t0:.0f} s: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
