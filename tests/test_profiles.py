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
import time
from collections import Counter
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


def test_slurm_profile_maps_partitions_and_leaves_gpus_to_the_rules():
    prof = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert prof["executor"] == "slurm" and prof["jobs"] >= 1 and prof["retries"] >= 1
    assert prof["latency-wait"] >= 30
    assert set(prof["default-resources"]) >= {"slurm_account", "slurm_partition", "mem_mb"}
    rules = gpu_rules()
    assert set(rules) == {"attention_mass", "sink_norms", "prune", "evaluate", "heldout"}
    assert set(prof["set-resources"]) == set(rules)
    blocks = rule_blocks()
    for rule, settings in prof["set-resources"].items():
        assert settings["slurm_partition"] == "$SINKPRUNE_GPU_PARTITION", rule
        assert settings["cpus_per_gpu"] >= 1, rule
        # a GPU request here would hold for the embedded models too; the rule decides per job
        assert not {"gpu", "gpus", "gpu_model", "gres", "slurm_extra"} & set(settings), rule
        assert "mem_mb" not in settings and "runtime" not in settings  # from resources.py
        assert f'gpu_model=gpu_model_for("{rules[rule]}")' in blocks[rule], rule


def test_gpu_model_only_where_a_gpu_is_asked_for():
    cfg = yaml.safe_load(PAPER.read_text())
    hub = cfg["models"]["LLaDA-8B-Base"]
    embedded = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["models"]["tiny-dlm"]
    for stage in res.STAGES:
        want = "h100" if stage in res.GPU_STAGES else None
        assert res.gpu_model(stage, hub, "h100") == want, stage
        assert res.gpu_model(stage, embedded, "h100") is None, stage
        assert res.gpu_model(stage, hub, "") is None and res.gpu_model(stage, hub, None) is None


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


SLURM_ENV = {
    "SINKPRUNE_SLURM_ACCOUNT": "testacct",
    "SINKPRUNE_CPU_PARTITION": "cpuq",
    "SINKPRUNE_GPU_PARTITION": "gpuq",
    "SINKPRUNE_GPU_MODEL": "h100",
}


def fake_submit(tmp_path: Path, configfile: Path, inputs: list[str], targets: list[str]) -> dict:
    """Run the SLURM profile on `targets` against fake sbatch & co.; rule -> its sbatch argv.

    `inputs` are created first, each one (and its folder, which may be a directory output)
    a second newer than the one before, in the DAG's order: only the targets' jobs are submitted.
    (Files older than the workflow's code would count as changed code without metadata.)
    """
    work = tmp_path / "work"
    now = time.time()
    for i, name in enumerate(inputs):
        touch(work / name, "{}" if name.endswith(".json") else "x")
        for path in (work / name, (work / name).parent):
            os.utime(path, (now + i, now + i))
    fake_slurm(tmp_path / "bin")
    log = tmp_path / "sbatch.jsonl"
    env = {
        **os.environ,
        **SLURM_ENV,
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "FAKE_SLURM_LOG": str(log),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    cmd = [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work)]
    cmd += ["--configfile", str(configfile), "--profile", str(ROOT / "profiles" / "slurm")]
    cmd += ["--slurm-init-seconds-before-status-checks", "1", "--retries", "0", *targets]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert len(calls) == len(targets), (proc.stdout + proc.stderr)[-3000:]
    return {flag(c, "--comment").split("_wildcards_")[0].removeprefix("rule_"): c for c in calls}


def test_slurm_submission_with_fake_sbatch(tmp_path):
    """Paper models: the GPU job asks for --gpus=<SINKPRUNE_GPU_MODEL>:1, the CPU job for none."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    cfg = yaml.safe_load(PAPER.read_text())
    gpu_model, cpu_model = "LLaDA-8B-Base", "Dream-v0-Base-7B"
    corpus = [f"results/corpus/{split}.txt" for split in ("train", "valid", "test")]
    inputs = [f"resources/models/{m}/config.json" for m in (gpu_model, cpu_model)]
    inputs += [*corpus, "results/corpus/stats.json"]
    inputs += [f"results/{gpu_model}/calibration/samples.parquet"]
    targets = [
        f"results/{gpu_model}/attention/mass.parquet",
        f"results/{gpu_model}/pruned/wanda_unstructured_0.25/prune_report.json",
        f"results/{cpu_model}/calibration/samples.parquet",
    ]
    by_rule = fake_submit(tmp_path, PAPER, inputs, targets)
    assert set(by_rule) == {"attention_mass", "prune", "calibration"}

    for rule, wildcards in [
        ("attention_mass", {"model": gpu_model}),
        ("prune", {"model": gpu_model, "variant": "wanda_unstructured_0.25"}),
    ]:
        gpu = by_rule[rule]
        job = res.job_size(rule, cfg, wildcards)
        mcfg = cfg["models"][gpu_model]
        assert flag(gpu, "-p") == "gpuq" and flag(gpu, "-A") == "testacct", rule
        assert flag(gpu, "--gpus") == "h100:1", rule
        assert flag(gpu, "--cpus-per-gpu") == "8", rule
        assert flag(gpu, "--mem") == str(res.mem_mb(rule, mcfg, 1, **job)), rule
        assert flag(gpu, "-t") == str(res.runtime_min(rule, mcfg, 1, **job)), rule

    cpu = by_rule["calibration"]
    job = res.job_size("calibration", cfg, {"model": cpu_model})
    mcfg = cfg["models"][cpu_model]
    assert flag(cpu, "-p") == "cpuq" and flag(cpu, "--gpus") is None
    assert not any("gpu" in a for a in cpu if not a.startswith("--wrap"))
    assert flag(cpu, "--mem") == str(res.mem_mb("calibration", mcfg, 1, **job))
    assert flag(cpu, "-t") == str(res.runtime_min("calibration", mcfg, 1, **job))


def test_slurm_submission_of_embedded_models_asks_for_no_gpu(tmp_path):
    """The embedded default's GPU-stage jobs go to the GPU partition but ask for no GPU, even with
    SINKPRUNE_GPU_MODEL set (a `--gpus=h100:0` would make SLURM fail the job's step)."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    default = ROOT / "config" / "config.yaml"
    corpus = [f"results/corpus/{split}.txt" for split in ("train", "valid", "test")]
    inputs = [*corpus, "results/corpus/stats.json"]
    inputs += [f"results/tokenizer/{name}.json" for name in ("tokenizer", "tokenizer_config")]
    inputs += ["results/models/tiny-dlm/config.json"]
    inputs += ["results/tiny-dlm/calibration/samples.parquet"]
    targets = [
        "results/tiny-dlm/attention/mass.parquet",
        "results/tiny-dlm/pruned/wanda_unstructured_0.5/prune_report.json",
    ]
    by_rule = fake_submit(tmp_path, default, inputs, targets)
    assert set(by_rule) == {"attention_mass", "prune"}
    for rule, argv in by_rule.items():
        assert flag(argv, "-p") == "gpuq", rule
        assert not any("gpu" in a for a in argv if a != "gpuq" and not a.startswith("--wrap")), (
            rule,
            argv,
        )
        assert flag(argv, "--cpus-per-task") == "1", rule  # res.threads of embedded models


def slurm_dry_run(workdir: Path, configfile: Path) -> tuple[str, list[tuple[str, dict]]]:
    """`snakemake -n --profile profiles/slurm --jobs 10` with SLURM_ENV set: its output and, per
    job, (rule, {resource: value}) from its `resources:` line."""
    env = {**os.environ, **SLURM_ENV, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [str(SNAKEMAKE), "-n", "--snakefile", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(workdir), "--configfile", str(configfile)]
    cmd += ["--profile", str(ROOT / "profiles" / "slurm"), "--jobs", "10"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block)
        line = re.search(r"^ +resources: (.*)$", block, flags=re.M)
        if m and line:
            pairs = (item.split("=", 1) for item in line.group(1).split(", "))
            jobs.append((m.group(1), {k: v for k, v in pairs}))
    return out, jobs


def test_slurm_profile_dry_run_builds_the_paper_dag(tmp_path):
    """The paper through the SLURM profile: every job, and a GPU (of SINKPRUNE_GPU_MODEL, in the GPU
    partition) exactly for attention_mass, prune, evaluate and heldout of the 8B models."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    from test_paper_config import expected_jobs

    from sinkprune.config import validate_config

    cfg = validate_config(
        yaml.safe_load(PAPER.read_text()), ROOT / "workflow/schemas/config.schema.yaml"
    )
    out, jobs = slurm_dry_run(tmp_path, PAPER)
    total = int(re.search(r"^total\s+(\d+)$", out, flags=re.M).group(1))
    assert total == sum(expected_jobs(cfg).values())
    assert len(jobs) == total
    on_gpu = Counter()
    for rule, resources in jobs:
        if rule == "all":  # the target rule: no action, no resources of its own
            continue
        gpu = rule in {"attention_mass", "sink_norms", "prune", "evaluate", "heldout"}
        on_gpu[rule] += gpu
        assert resources["slurm_partition"] == ("gpuq" if gpu else "cpuq"), (rule, resources)
        assert resources["gpu"] == ("1" if gpu else "0"), (rule, resources)
        assert resources.get("gpu_model") == ("h100" if gpu else None), (rule, resources)
        assert resources["slurm_account"] == "testacct"
    n_models = len(cfg["models"])
    assert on_gpu["attention_mass"] == n_models and on_gpu["prune"] > 0 and on_gpu["evaluate"] > 0


def test_slurm_profile_dry_run_of_the_embedded_default_asks_for_no_gpu(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    _, jobs = slurm_dry_run(tmp_path, ROOT / "config" / "config.yaml")
    rules = {rule for rule, _ in jobs}
    assert {"train_model", "attention_mass", "prune", "evaluate"} <= rules
    for rule, resources in jobs:
        assert resources.get("gpu", "0") == "0" and "gpu_model" not in resources, (rule, resources)
