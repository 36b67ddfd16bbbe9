"""The micro config through `--profile profiles/slurm` on a real single-node SLURM.

Run by `make test-cluster` (.test/slurm/test.sh: up.sh, this file, down.sh), which sets
SINKPRUNE_TEST_SLURM=1; skipped otherwise. Checks that every job of the micro config went through
sbatch and succeeded there, that the rules' resources reached SLURM (partitions, no GPU request for
the embedded models even with SINKPRUNE_GPU_MODEL set), and that the tables equal, byte for byte,
those of a local `--cores 2` run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
MICRO = REPO / ".test" / "config" / "config.yaml"
GPU_STAGE_RULES = {"attention_mass", "prune", "evaluate", "heldout"}
TABLE_SUFFIXES = {".md", ".csv", ".tex"}
RUN_TIMEOUT_S = 900  # a hung status query fails the test instead of the CI job

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("SINKPRUNE_TEST_SLURM") != "1",
        reason="needs the test SLURM: make test-cluster",
    ),
]


def start_micro(workdir: Path, *args: str, env: dict | None = None):
    """Start the micro config in `workdir` (config/ and resources/ linked from the repo), its
    output going to `workdir`.log; returns what `finish` needs."""
    workdir.mkdir(parents=True)
    for name in ("config", "resources"):
        (workdir / name).symlink_to(REPO / name)
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--configfile", str(MICRO), *args]
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    log = workdir.with_suffix(".log")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    return cmd, proc, log


def finish(cmd: list[str], proc: subprocess.Popen, log: Path) -> str:
    """Wait for a run of `start_micro` (RUN_TIMEOUT_S at most); its output."""
    try:
        proc.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out = log.read_text()
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-8000:]}"
    return out


def job_counts(log: str) -> Counter:
    """rule -> jobs, from the `Job stats:` table Snakemake prints before running."""
    table = log.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    return Counter({r[0]: int(r[1]) for r in rows if len(r) == 2 and r[0] != "total"})


def tables(workdir: Path) -> dict[str, bytes]:
    root = workdir / "results" / "tables"
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.suffix in TABLE_SUFFIXES
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(local run dir, its log, SLURM run dir, its log)."""
    assert os.environ.get("SLURM_CONF") and shutil.which("sbatch"), (
        "SLURM_CONF unset or no sbatch: start the test cluster with .test/slurm/up.sh "
        "and source .test/slurm/state/env.sh"
    )
    base = tmp_path_factory.mktemp("cluster")
    # side by side: the SLURM run leaves the CPUs idle while it polls and between its jobs
    local = start_micro(base / "local", "--cores", "2")
    slurm = start_micro(
        base / "slurm",
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--slurm-status-command",
        "squeue",  # no accounting database on the test cluster (profiles/README.md)
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--slurm-keep-successful-logs",
        "--retries",
        "0",  # one sbatch per job
        env={"SINKPRUNE_GPU_MODEL": "a100"},  # must not reach the embedded models' jobs
    )
    try:
        slurm_log = finish(*slurm)
    except BaseException:
        local[1].kill()
        raise
    local_log = finish(*local)
    return base / "local", local_log, base / "slurm", slurm_log


def test_every_job_went_through_sbatch(runs):
    _, local_log, slurm_dir, slurm_log = runs
    expected = job_counts(local_log)
    assert expected == job_counts(slurm_log) and expected["all"] == 1
    del expected["all"]  # the target rule has no action: Snakemake finishes it locally
    assert re.findall(r"^localrule (\w+):", slurm_log, flags=re.M) == ["all"]
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", slurm_log)
    assert len(submitted) == sum(expected.values())

    logs = slurm_dir / ".snakemake" / "slurm_logs"
    found = Counter()
    for path in logs.rglob("*.log"):
        rule = path.relative_to(logs).parts[0].removeprefix("rule_")
        found[rule] += 1
        text = path.read_text()
        assert "1 of 1 steps (100%) done" in text, f"{path}:\n{text[-3000:]}"
    assert found == expected


def test_slurm_got_the_rules_resources(runs):
    """GPU-stage rules ran in the GPU partition, the rest in the CPU one; nothing asked for a GPU."""
    _, _, _, slurm_log = runs
    ids = re.findall(r"has been submitted with SLURM jobid (\d+)", slurm_log)
    fields = "JobID:|,Partition:|,State:|,tres-per-job:|,tres-per-node:|,Comment:|"
    out = subprocess.run(
        ["squeue", "--states=all", "-h", "-j", ",".join(ids), "-O", fields],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    assert sorted(r[0] for r in rows) == sorted(ids)  # MinJobAge keeps them all visible
    for job_id, partition, state, per_job, per_node, comment, *_ in rows:
        rule = comment.removeprefix("rule_").split("_wildcards_")[0]
        assert state == "COMPLETED", (job_id, rule, state)
        kind = "GPU" if rule in GPU_STAGE_RULES else "CPU"
        assert partition == os.environ[f"SINKPRUNE_{kind}_PARTITION"], (job_id, rule, partition)
        assert per_job == "N/A" and per_node == "N/A", (job_id, rule, per_job, per_node)


def test_tables_equal_the_local_run(runs):
    local_dir, _, slurm_dir, _ = runs
    local, slurm = tables(local_dir), tables(slurm_dir)
    assert any(name.endswith(".md") for name in local) and any(n.endswith(".tex") for n in local)
    assert sorted(slurm) == sorted(local)
    differ = [name for name in local if local[name] != slurm[name]]
    assert not differ, f"tables differ between the local and the SLURM run: {differ}"
