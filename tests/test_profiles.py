"""Profiles (profiles/{default,local,slurm}) and the rule conventions they rely on.

The SLURM test submits two real jobs through snakemake-executor-plugin-slurm to fake
`sbatch`/`sacct`/`sacctmgr`/`squeue`/`scontrol` scripts that record their arguments and report
every job as failed: the recorded sbatch calls show what a cluster would be asked for.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sinkprune import resources as res

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "paper.yaml"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
RULE_FILES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))


def rule_blocks() -> dict[str, str]:
    """rule name -> its text, from every .smk file."""
    blocks = {}
    for path in RULE_FILES:
        text = path.read_text()
        parts = re.split(r"^ *rule (\w+):\n", text, flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            blocks[name] = body.split("\n\n\n")[0]
    return blocks


def gpu_rules() -> dict[str, str]:
    """rule -> stage, for rules whose gpu resource comes from gpu_for(stage) of a GPU stage."""
    out = {}
    for name, body in rule_blocks().items():
        m = re.search(r'gpu=gpu_for\("(\w+)"\)', body)
        if m and m.group(1) in res.GPU_STAGES:
            out[name] = m.group(1)
    return out


def test_every_rule_has_log_conda_and_gpu_resource():
    blocks = rule_blocks()
    assert {"download_model", "tables", "figures"} <= set(blocks)
    for name, body in blocks.items():
        for key in ("log:", "conda:", "resources:"):
            assert re.search(rf"^ +{key}", body, flags=re.M), f"rule {name} has no {key}"
        assert re.search(r"gpu=(0|gpu_for\(\"\w+\"\))", body), f"rule {name}: no gpu resource"
        assert "lambda" not in body, f"rule {name} uses a lambda"
        if "gpu=0" in body:
            assert "mem_mb=" in body, f"rule {name}: CPU rule without mem_mb"


def test_conda_envs_exist_and_install_sinkprune():
    for path in RULE_FILES:
        for env in re.findall(r'conda:\n\s+"([^"]+)"', path.read_text()):
            env_file = (path.parent / env).resolve()
            assert env_file.is_file(), f"{path.name}: {env} not found"
            deps = yaml.safe_load(env_file.read_text())["dependencies"]
            pip = next(d["pip"] for d in deps if isinstance(d, dict))
            assert any(p.startswith("-e ..") for p in pip), env_file


def test_default_profile_is_loaded_and_overrides_nothing_machine_specific(monkeypatch):
    from snakemake.cli import parse_args

    path = ROOT / "profiles" / "default" / "profile.yaml"
    keys = set(yaml.safe_load(path.read_text()))
    # Snakemake lets the workflow profile override a --profile: machine keys stay out of it
    machine = {"cores", "jobs", "latency-wait", "retries", "keep-going", "executor"}
    assert not keys & (machine | {"default-resources", "set-resources", "resources"})
    monkeypatch.chdir(ROOT)
    _, args = parse_args(["-n"])
    assert args.printshellcmds and args.rerun_incomplete


def test_local_profile(monkeypatch):
    from snakemake.cli import parse_args

    monkeypatch.chdir(ROOT)
    _, args = parse_args(["-n", "--profile", "profiles/local"])
    assert args.resources["gpu"].value == 1  # GPU jobs never overlap on one box
    assert args.cores == os.cpu_count()  # cores: all
    assert args.latency_wait == 5 and args.retries == 1


def test_slurm_profile_maps_every_gpu_rule():
    prof = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert prof["executor"] == "slurm" and prof["jobs"] >= 1 and prof["retries"] >= 1
    assert prof["latency-wait"] >= 30
    assert set(prof["default-resources"]) >= {"slurm_account", "slurm_partition", "mem_mb"}
    rules = gpu_rules()
    assert set(rules) == {"attention_mass", "sink_norms", "prune", "evaluate", "heldout"}
    assert set(prof["set-resources"]) == set(rules)
    for rule, settings in prof["set-resources"].items():
        assert settings["gpu"] == 1, rule
        assert settings["slurm_partition"] == "$SINKPRUNE_GPU_PARTITION", rule
        assert {"gpu_model", "cpus_per_gpu"} <= set(settings), rule
        assert "mem_mb" not in settings and "runtime" not in settings  # from resources.py


FAKE_SBATCH = """#!{py}
import json, os, sys
log = os.environ["FAKE_SLURM_LOG"]
with open(log, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
print(1000 + sum(1 for _ in open(log)))
"""
FAKE_SACCT = """#!{py}
import os
log = os.environ["FAKE_SLURM_LOG"]
n = sum(1 for _ in open(log)) if os.path.exists(log) else 0
print("\\n".join(f"{{1000 + i}}|FAILED" for i in range(1, n + 1)))
"""


def fake_slurm(bin_dir: Path) -> None:
    bin_dir.mkdir()
    scripts = {
        "sbatch": FAKE_SBATCH.format(py=sys.executable),
        "sacct": FAKE_SACCT.format(py=sys.executable),
        "sacctmgr": "#!/bin/sh\necho testacct\n",
        "scontrol": "#!/bin/sh\necho 'MinJobAge = 300 sec'\n",
        "squeue": "#!/bin/sh\nexit 0\n",
        "scancel": "#!/bin/sh\nexit 0\n",
        "sinfo": "#!/bin/sh\nexit 0\n",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)


def touch(path: Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def flag(argv: list[str], name: str) -> str | None:
    for i, a in enumerate(argv):
        if a == name:
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def test_slurm_submission_with_fake_sbatch(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    cfg = yaml.safe_load(PAPER.read_text())
    gpu_model, cpu_model = "LLaDA-8B-Base", "Dream-v0-Base-7B"
    work = tmp_path / "work"
    # inputs of one GPU job (attention_mass) and one CPU job (calibration), oldest first
    for m in (gpu_model, cpu_model):
        touch(work / "resources" / "models" / m / "config.json", "{}")
    for split in ("train", "valid", "test"):
        touch(work / "results" / "corpus" / f"{split}.txt")
    touch(work / "results" / "corpus" / "stats.json", "{}")
    samples = work / "results" / gpu_model / "calibration" / "samples.parquet"
    touch(samples)
    os.utime(samples, (samples.stat().st_atime + 10, samples.stat().st_mtime + 10))
    fake_slurm(tmp_path / "bin")
    log = tmp_path / "sbatch.jsonl"
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "FAKE_SLURM_LOG": str(log),
        "SINKPRUNE_SLURM_ACCOUNT": "testacct",
        "SINKPRUNE_CPU_PARTITION": "cpuq",
        "SINKPRUNE_GPU_PARTITION": "gpuq",
        "SINKPRUNE_GPU_MODEL": "h100",
        "HF_HUB_OFFLINE": "1",
    }
    targets = [
        f"results/{gpu_model}/attention/mass.parquet",
        f"results/{cpu_model}/calibration/samples.parquet",
    ]
    proc = subprocess.run(
        [
            str(SNAKEMAKE),
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(work),
            "--configfile",
            str(PAPER),
            "--profile",
            str(ROOT / "profiles" / "slurm"),
            "--slurm-init-seconds-before-status-checks",
            "1",
            "--retries",
            "0",
            *targets,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=80,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert len(calls) == 2, (proc.stdout + proc.stderr)[-3000:]
    by_rule = {flag(c, "--comment").split("_wildcards_")[0].removeprefix("rule_"): c for c in calls}
    assert set(by_rule) == {"attention_mass", "calibration"}

    gpu = by_rule["attention_mass"]
    job = res.job_size("attention_mass", cfg, {"model": gpu_model})
    mcfg = cfg["models"][gpu_model]
    assert flag(gpu, "-p") == "gpuq" and flag(gpu, "-A") == "testacct"
    assert flag(gpu, "--gpus") == "h100:1"
    assert flag(gpu, "--cpus-per-gpu") == "8"
    assert flag(gpu, "--mem") == str(res.mem_mb("attention_mass", mcfg, 1, **job))
    assert flag(gpu, "-t") == str(res.runtime_min("attention_mass", mcfg, 1, **job))

    cpu = by_rule["calibration"]
    job = res.job_size("calibration", cfg, {"model": cpu_model})
    mcfg = cfg["models"][cpu_model]
    assert flag(cpu, "-p") == "cpuq" and flag(cpu, "--gpus") is None
    assert not any("gpu" in a for a in cpu if not a.startswith("--wrap"))
    assert flag(cpu, "--mem") == str(res.mem_mb("calibration", mcfg, 1, **job))
    assert flag(cpu, "-t") == str(res.runtime_min("calibration", mcfg, 1, **job))


def test_slurm_profile_dry_run_builds_the_paper_dag(tmp_path):
    """The SLURM executor dry-runs (the profile sets `jobs`); GPU rules carry the GPU partition."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    from test_paper_config import expected_jobs

    from sinkprune.config import validate_config

    cfg = validate_config(
        yaml.safe_load(PAPER.read_text()), ROOT / "workflow/schemas/config.schema.yaml"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        [
            str(SNAKEMAKE),
            "-n",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(PAPER),
            "--profile",
            str(ROOT / "profiles" / "slurm"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=80,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    total = int(re.search(r"^total\s+(\d+)$", out, flags=re.M).group(1))
    assert total == sum(expected_jobs(cfg).values())
    for block in re.split(r"\n(?=rule \w+:)", out):
        m = re.match(r"rule (\w+):", block)
        if not m or "resources:" not in block:
            continue
        on_gpu = m.group(1) in {"attention_mass", "sink_norms", "prune", "evaluate", "heldout"}
        assert ("slurm_partition=$SINKPRUNE_GPU_PARTITION" in block) == on_gpu, block
        assert ("gpu=1" in block) == on_gpu, block
