"""Resume a killed run with the same command: clear Snakemake's stale lock, never a live one.

After `kill -9` (or a power cut) Snakemake leaves its lock in `.snakemake/locks/` and the next
run stops with LockException until `snakemake --unlock`. `make run` calls

    python -m sinkprune.locks -- snakemake --cores all

which (1) takes an exclusive `flock` on `.snakemake/sinkprune-run.lock` for as long as the
command runs, so two `make run` in one directory never overlap (the second stops at once);
(2) looks for live Snakemake processes in this directory outside its own process chain: the
Snakemake CLI started by hand, or job scripts that outlived a Snakemake killed with `kill -9`
(they still write outputs, which the next run would write too); if there is one it stops with
one line naming them, (3) else removes `.snakemake/locks/*` (what `snakemake --unlock` does), and
(4) replaces itself with the command, which inherits the `flock`.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

RUN_LOCK = Path(".snakemake") / "sinkprune-run.lock"
LOCKS = Path(".snakemake") / "locks"


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a for a in raw.decode(errors="replace").split("\0") if a]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def ancestors(pid: int) -> set[int]:
    """`pid` and its parents up to init (the wrapper's own make / shell / python chain)."""
    out = set()
    while pid and pid not in out:
        out.add(pid)
        pid = _parent(pid) or 0
    return out


def is_snakemake(argv: list[str]) -> bool:
    """The Snakemake CLI (`snakemake ...`, `python -m snakemake`) or a job script it started
    (`python .../.snakemake/scripts/tmpXXXX.rule.py`)."""
    for i, arg in enumerate(argv):
        if os.path.basename(arg) == "snakemake" or "/.snakemake/scripts/" in arg:
            return True
        if arg == "-m" and i + 1 < len(argv) and argv[i + 1] == "snakemake":
            return True
    return False


def live_snakemake(workdir: str | Path) -> list[tuple[int, str]]:
    """(pid, command line) of Snakemake processes whose working directory is `workdir`,
    excluding this process and its ancestors."""
    workdir = Path(workdir).resolve()
    mine = ancestors(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        argv = _cmdline(int(entry.name))
        if not argv or not is_snakemake(argv):
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd")).resolve()
        except OSError:
            continue  # gone, or another user's process
        if cwd == workdir:
            found.append((int(entry.name), " ".join(argv)[:200]))
    return found


class LiveRunError(RuntimeError):
    """A Snakemake process (or a job of a killed one) still runs in the directory."""


def clear_stale_locks(workdir: str | Path = ".") -> str:
    """Remove Snakemake's lock files of `workdir`, which no live process may hold; return what
    was done (one line). LiveRunError when a Snakemake process or job runs there."""
    live = live_snakemake(workdir)
    if live:
        pids = "; ".join(f"pid {pid}: {cmd}" for pid, cmd in live[:3])
        raise LiveRunError(
            f"a Snakemake run (or a job of a killed one) is still running in "
            f"{Path(workdir).resolve()} ({pids}); wait for it or stop it, then run again"
        )
    locks = sorted((Path(workdir) / LOCKS).glob("*"))
    if not locks:
        return "no Snakemake lock to clear"
    for f in locks:
        f.unlink(missing_ok=True)
    return f"removed the stale Snakemake lock of a killed run ({len(locks)} file(s) in {LOCKS})"


def run_locked(command: list[str], workdir: str | Path = ".") -> None:
    """Hold the run lock, clear a stale Snakemake lock, then exec `command` (never returns)."""
    if not command:
        raise SystemExit("usage: python -m sinkprune.locks -- COMMAND [ARGS...]")
    lock_path = Path(workdir) / RUN_LOCK
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        raise SystemExit(
            f"another `make run` (pid {holder}) is running in {Path(workdir).resolve()}; "
            "wait for it, or stop it and run again"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    try:
        print(f"sinkprune.locks: {clear_stale_locks(workdir)}", file=sys.stderr)
    except LiveRunError as err:
        raise SystemExit(f"sinkprune.locks: {err}") from None
    os.set_inheritable(fd, True)  # the lock lives as long as the command
    os.execvp(command[0], command)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--":
        args = args[1:]
    run_locked(args)


if __name__ == "__main__":
    main()
