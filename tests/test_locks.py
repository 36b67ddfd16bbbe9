"""Resume with the same command (sinkprune.locks, `make run`): a stale Snakemake lock left by
`kill -9` is cleared, a live run's never; two runs in one directory never overlap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sinkprune import locks

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
WRAPPER = [sys.executable, "-m", "sinkprune.locks", "--"]
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}

SNAKEFILE = """
rule all:
    input: "b.txt"

rule slow:
    output: "a.txt"
    script: "slow.py"

rule fast:
    input: "a.txt"
    output: "b.txt"
    shell: "cat {input} > {output}"
"""
SLOW = """import time
time.sleep(float(snakemake.config["sleep"]))
open(snakemake.output[0], "w").write("a\\n")
"""


def sleeper(cwd: Path, *argv: str) -> subprocess.Popen:
    """A process whose command line looks like `argv`, sleeping in `cwd`."""
    code = "import time; time.sleep(60)"
    return subprocess.Popen([sys.executable, "-c", code, *argv], cwd=cwd)


def wait_for(predicate, timeout: float = 30.0) -> None:
    end = time.time() + timeout
    while not predicate():
        if time.time() > end:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_is_snakemake_recognises_the_cli_and_job_scripts():
    assert locks.is_snakemake(["/venv/bin/python", "/venv/bin/snakemake", "--cores", "2"])
    assert locks.is_snakemake(["snakemake", "-n"])
    assert locks.is_snakemake(["python", "-m", "snakemake"])
    assert locks.is_snakemake(["python", "/w/.snakemake/scripts/tmpab12.prune.py"])
    assert not locks.is_snakemake(["vim", "/w/.snakemake/log/x.log"])
    assert not locks.is_snakemake(["python", "-m", "pytest", "tests/test_snakemake.py"])


def test_stale_lock_is_removed_only_without_a_live_run(tmp_path):
    (tmp_path / ".snakemake" / "locks").mkdir(parents=True)
    (tmp_path / ".snakemake" / "locks" / "0.output.lock").write_text("x\n")
    other = tmp_path / "other"
    other.mkdir()
    elsewhere = sleeper(other, "/x/.snakemake/scripts/tmp.rule.py")  # another directory's job
    here = sleeper(tmp_path, "/x/.snakemake/scripts/tmp.rule.py")  # a job of a killed run
    try:
        wait_for(lambda: locks.live_snakemake(tmp_path))
        assert [pid for pid, _ in locks.live_snakemake(tmp_path)] == [here.pid]
        with pytest.raises(locks.LiveRunError, match=f"pid {here.pid}"):
            locks.clear_stale_locks(tmp_path)
        assert (tmp_path / ".snakemake" / "locks" / "0.output.lock").exists()
        here.kill()
        here.wait()
        assert "removed the stale Snakemake lock" in locks.clear_stale_locks(tmp_path)
        assert not any((tmp_path / ".snakemake" / "locks").iterdir())
        assert "no Snakemake lock" in locks.clear_stale_locks(tmp_path)
    finally:
        for p in (here, elsewhere):
            p.kill()
            p.wait()


def test_second_wrapped_run_in_one_directory_stops_at_once(tmp_path):
    first = subprocess.Popen(
        [*WRAPPER, sys.executable, "-c", "import time; time.sleep(20)"],
        cwd=tmp_path,
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (tmp_path / locks.RUN_LOCK).is_file())
        time.sleep(1.0)  # the first has taken the lock and exec'd its command
        second = subprocess.run(
            [*WRAPPER, "true"], cwd=tmp_path, env=ENV, capture_output=True, text=True
        )
        assert second.returncode != 0
        assert f"another `make run` (pid {first.pid})" in second.stderr
    finally:
        first.kill()
        first.wait()
    # the lock dies with its holder: the next run goes ahead
    third = subprocess.run([*WRAPPER, "true"], cwd=tmp_path, env=ENV, capture_output=True)
    assert third.returncode == 0


@pytest.mark.slow
def test_killed_snakemake_resumes_with_the_same_command(tmp_path):
    """kill -9 a real Snakemake mid-job: plain `snakemake` then stops with LockException; the
    wrapped command clears the stale lock and finishes; a live run is never unlocked."""
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "slow.py").write_text(SLOW)
    command = [SNAKEMAKE, "--cores", "1", "--config", "sleep=30", "--rerun-incomplete"]
    run = subprocess.Popen(command, cwd=tmp_path, start_new_session=True, env=ENV)
    try:
        wait_for(lambda: any((tmp_path / ".snakemake" / "locks").glob("*")), timeout=60)
        wait_for(lambda: len(locks.live_snakemake(tmp_path)) >= 2, timeout=60)  # cli + job
        # a live run: the wrapper refuses instead of unlocking
        live = subprocess.run([*WRAPPER, *command], cwd=tmp_path, env=ENV, capture_output=True)
        assert live.returncode != 0 and b"still running" in live.stderr
        assert any((tmp_path / ".snakemake" / "locks").glob("*"))
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # kill -9 the run and its job
        run.wait()
    wait_for(lambda: not locks.live_snakemake(tmp_path))
    plain = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert plain.returncode != 0 and "LockException" in plain.stdout + plain.stderr
    fast = [SNAKEMAKE, "--cores", "1", "--config", "sleep=0", "--rerun-incomplete"]
    resumed = subprocess.run([*WRAPPER, *fast], cwd=tmp_path, env=ENV, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert b"removed the stale Snakemake lock" in resumed.stderr
    assert (tmp_path / "b.txt").read_text() == "a\n"
