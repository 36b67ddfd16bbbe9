"""Catalogue of bad inputs a new user tries: each is refused before any job, naming the key.

Every case starts from the micro config (.test/config/config.yaml), changes one thing and goes
through the function the Snakefile calls (`sinkprune.config.validate_config`, or for config
files `sinkprune.config_checks.load_config_file`, for --cores/--jobs `check_run_settings`).
The error must be a ConfigError, on one line, naming the key (or file:line:column). A handful of
cases go through a real `snakemake -n` to prove the wiring: exit status 1, one line, no
traceback, no job planned.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from sinkprune.config import ConfigError, validate_config
from sinkprune.config_checks import check_run_settings, load_config_file

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
MICRO = ROOT / ".test" / "config" / "config.yaml"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
NAN, INF = math.nan, math.inf


def micro() -> dict:
    return yaml.safe_load(MICRO.read_text())


# ---------------------------------------------------------------- mutations ---
def _walk(config: dict, path: str):
    """(parent, last key) of a dotted path; `[i]` indexes lists."""
    parts = []
    for part in path.split("."):
        name, *idx = part.replace("]", "").split("[")
        parts.append(name)
        parts += [int(i) for i in idx]
    node = config
    for p in parts[:-1]:
        node = node.setdefault(p, {}) if isinstance(node, dict) else node[p]
    return node, parts[-1]


def put(path: str, value) -> Callable[[dict], None]:
    def change(config: dict) -> None:
        parent, key = _walk(config, path)
        parent[key] = copy.deepcopy(value)

    return change


def drop(path: str) -> Callable[[dict], None]:
    def change(config: dict) -> None:
        parent, key = _walk(config, path)
        del parent[key]

    return change


def both(*changes) -> Callable[[dict], None]:
    def change(config: dict) -> None:
        for c in changes:
            c(config)

    return change


HUB = {"family": "llada", "kind": "dlm", "source": "hub", "hub_id": "GSAI-ML/LLaDA-8B-Base"}
GEN = {"num_fewshot": 0, "mc_num": 1, "batch_size": 2, "limit": 5, "metric": "exact_match"}
GRID_NM = {"sparsity_type": "2:4", "methods": ["wanda", "sparsegpt"], "sparsities": [0.5]}
GRID_48 = {"sparsity_type": "4:8", "methods": ["wanda"], "sparsities": [0.5]}


@dataclass
class Case:
    id: str
    change: Callable[[dict], None]
    words: tuple[str, ...]  # every one must appear in the message (the key first)


CASES = [
    # ---- unknown keys (a typo never falls back to a default)
    Case("unknown-top-level-key", put("prunning", {}), ("prunning",)),
    Case("unknown-corpus-key", put("corpus.vocab", 3), ("corpus.vocab",)),
    Case("unknown-model-key", put("models.tiny-dlm.layers", 2), ("models.tiny-dlm.layers",)),
    Case("unknown-arch-key", put("models.tiny-dlm.arch.n_layer", 2), ("tiny-dlm.arch.n_layer",)),
    Case("unknown-train-key", put("models.tiny-dlm.train.epochs", 2), ("tiny-dlm.train.epochs",)),
    Case(
        "unknown-task-setting",
        put("evaluation.tasks.shakespeare_next_line.shots", 5),
        ("evaluation.tasks.shakespeare_next_line.shots",),
    ),
    Case("unknown-heldout-key", put("evaluation.heldout.windows", 4), ("heldout.windows",)),
    # ---- types
    Case("string-for-integer", put("calibration.nsamples", "four"), ("calibration.nsamples",)),
    Case("float-for-integer", put("calibration.nsamples", 4.0), ("calibration.nsamples",)),
    Case("bool-for-integer", put("seed", True), ("seed",)),
    Case("quoted-number", put("tokenizer.vocab_size", "1024"), ("tokenizer.vocab_size",)),
    Case("list-for-mapping", put("models", []), ("models",)),
    Case("string-for-list", put("pruning.models", "tiny-dlm"), ("pruning.models",)),
    Case("quoted-sparsity", put("pruning.grid[0].sparsities", ["0.5"]), ("sparsities[0]",)),
    Case("string-for-bool", put("evaluation.include_local_tasks", "no"), ("include_local",)),
    # ---- ranges and enums
    Case("negative-seed", put("seed", -1), ("seed",)),
    Case("vocab-too-small", put("tokenizer.vocab_size", 100), ("tokenizer.vocab_size",)),
    Case("empty-models", put("models", {}), ("models",)),
    Case("bad-model-name", put("models", {"a/b": HUB}), ("models",)),
    Case("unknown-family", put("models.tiny-dlm.family", "gpt"), ("models.tiny-dlm.family",)),
    Case("unknown-kind", put("models.tiny-dlm.kind", "mlm"), ("models.tiny-dlm.kind",)),
    Case("unknown-source", put("models.tiny-dlm.source", "s3"), ("models.tiny-dlm.source",)),
    Case("tiny-d-model", put("models.tiny-dlm.arch.d_model", 4), ("arch.d_model",)),
    Case("zero-layers", put("models.tiny-dlm.arch.n_layers", 0), ("arch.n_layers",)),
    Case("zero-lr", put("models.tiny-dlm.train.lr", 0), ("train.lr",)),
    Case("min-lr-ratio-above-1", put("models.tiny-dlm.train.min_lr_ratio", 1.5), ("ratio",)),
    Case("zero-batch", put("models.tiny-dlm.train.batch_size", 0), ("train.batch_size",)),
    Case("seqlen-below-4", put("calibration.seqlen", 2), ("calibration.seqlen",)),
    Case("eps-one", put("diffusion.eps", 1.0), ("diffusion.eps",)),
    Case("zero-steps", put("diffusion.steps", 0), ("diffusion.steps",)),
    Case("zero-chunk", put("attention.chunk_size", 0), ("attention.chunk_size",)),
    Case("unknown-sink-rule", put("sinks.rule", "hard"), ("sinks.rule",)),
    Case("zero-alpha", put("sinks.alpha", 0), ("sinks.alpha",)),
    Case("sparsity-one", put("pruning.grid[0].sparsities", [1.0]), ("sparsities[0]",)),
    Case("sparsity-zero", put("pruning.grid[0].sparsities", [0.0]), ("sparsities[0]",)),
    Case("sparsity-negative", put("pruning.grid[0].sparsities", [-0.5]), ("sparsities[0]",)),
    Case("unknown-nm", put("pruning.grid[0].sparsity_type", "3:4"), ("sparsity_type",)),
    Case("unknown-method", put("pruning.grid[0].methods", ["obs"]), ("methods[0]", "obs")),
    Case("no-methods", put("pruning.grid[0].methods", []), ("pruning.grid[0].methods",)),
    Case("zero-blocksize", put("pruning.sparsegpt.blocksize", 0), ("sparsegpt.blocksize",)),
    Case("zero-percdamp", put("pruning.sparsegpt.percdamp", 0), ("sparsegpt.percdamp",)),
    Case("unknown-job-per", put("evaluation.job_per", "model"), ("evaluation.job_per",)),
    Case(
        "zero-mc-num",
        put("evaluation.tasks.shakespeare_next_line.mc_num", 0),
        ("shakespeare_next_line.mc_num",),
    ),
    Case(
        "zero-limit",
        put("evaluation.tasks.shakespeare_next_line.limit", 0),
        ("shakespeare_next_line.limit",),
    ),
    Case("empty-t-grid", put("evaluation.heldout.t_grid", []), ("heldout.t_grid",)),
    Case("t-grid-one", put("evaluation.heldout.t_grid", [1.0]), ("heldout.t_grid[0]",)),
    Case("few-items", put("evaluation.local_tasks.n_items", 5), ("local_tasks.n_items",)),
    Case("unknown-corpus-kind", put("corpus.kind", "web"), ("corpus.kind",)),
    Case("zero-valid-fraction", put("corpus.valid_fraction", 0), ("corpus.valid_fraction",)),
    Case("empty-tasks", put("evaluation.tasks", {}), ("evaluation.tasks",)),
    # ---- NaN and infinity (JSON Schema lets them through as numbers)
    Case("nan-sparsity", put("pruning.grid[0].sparsities", [NAN]), ("grid[0].sparsities[0]",)),
    Case("nan-alpha", put("sinks.alpha", NAN), ("sinks.alpha", "nan")),
    Case("inf-k", put("sinks.k", INF), ("sinks.k", "inf")),
    Case("minus-inf-k", put("sinks.k", -INF), ("sinks.k",)),
    Case("inf-lr", put("models.tiny-dlm.train.lr", INF), ("models.tiny-dlm.train.lr",)),
    Case("inf-minutes", put("models.tiny-dlm.train.minutes", INF), ("train.minutes",)),
    Case("nan-cfg", put("evaluation.tasks.shakespeare_next_line.cfg", NAN), ("next_line.cfg",)),
    Case("nan-eps", put("diffusion.eps", NAN), ("diffusion.eps",)),
    Case("nan-t-grid", put("evaluation.heldout.t_grid", [0.5, NAN]), ("t_grid[1]",)),
    Case("inf-rope-theta", put("models.tiny-ar.arch.rope_theta", INF), ("arch.rope_theta",)),
    # ---- required keys
    Case("evaluation-without-tasks", drop("evaluation.tasks"), ("evaluation.tasks", "required")),
    Case("no-calibration", drop("calibration"), ("calibration", "required")),
    Case("no-models", drop("models"), ("models", "required")),
    Case("no-evaluation", drop("evaluation"), ("evaluation", "required")),
    Case("model-without-family", drop("models.tiny-dlm.family"), ("tiny-dlm.family",)),
    Case("grid-without-methods", drop("pruning.grid[0].methods"), ("grid[0].methods",)),
    Case("arch-without-d-model", drop("models.tiny-dlm.arch.d_model"), ("arch.d_model",)),
    Case("trained-without-arch", drop("models.tiny-dlm.arch"), ("models.tiny-dlm.arch",)),
    Case("hub-without-hub-id", put("models.x", {**HUB, "hub_id": None}), ("models.x.hub_id",)),
    Case(
        "hub-missing-hub-id",
        put("models.x", {k: v for k, v in HUB.items() if k != "hub_id"}),
        ("models.x.hub_id",),
    ),  # fmt: skip
    Case("text-file-without-path", put("corpus.kind", "text_file"), ("corpus.path",)),
    Case("hf-without-dataset", put("corpus.kind", "hf_dataset"), ("corpus.dataset",)),
    # ---- cross-key rules
    Case("prune-unknown-model", put("pruning.models", ["llada"]), ("pruning.models", "llada")),
    Case("eval-unknown-model", put("evaluation.models", ["x"]), ("evaluation.models",)),
    Case("prune-ar-model", put("pruning.models", ["tiny-ar"]), ("pruning.models", "tiny-ar")),
    Case("heads-not-dividing", put("models.tiny-dlm.arch.n_heads", 3), ("arch.d_model",)),
    Case("kv-not-dividing", put("models.tiny-dlm.arch.n_kv_heads", 3), ("arch.n_heads",)),
    Case(
        "odd-head-size",
        both(put("models.tiny-dlm.arch.d_model", 30), put("models.tiny-dlm.arch.n_heads", 2)),
        ("models.tiny-dlm.arch", "odd"),
    ),
    Case(
        "fractions-sum-to-one",
        both(put("corpus.valid_fraction", 0.5), put("corpus.test_fraction", 0.5)),
        ("corpus.valid_fraction",),
    ),
    Case("interval-above-steps", put("diffusion.sample_interval", 20), ("sample_interval",)),
    Case(
        "structured-method-unstructured-type",
        put("pruning.grid[0].methods", ["sink_sp"]),
        ("pruning.grid[0].methods", "sink_sp"),
    ),
    Case(
        "unstructured-method-structured-type",
        put("pruning.grid[1].methods", ["wanda"]),
        ("pruning.grid[1].methods", "wanda"),
    ),
    Case(
        "nm-not-half",
        put("pruning.grid", [{**GRID_NM, "sparsities": [0.6]}]),
        ("pruning.grid[0].sparsities", "2:4"),
    ),
    Case(
        "local-task-without-local-tasks",
        put("evaluation.include_local_tasks", False),
        ("evaluation.include_local_tasks",),
    ),
    Case(
        "text-file-missing",
        both(put("corpus.kind", "text_file"), put("corpus.path", "no/such/file.txt")),
        ("corpus.path", "no/such/file.txt"),
    ),
    # ---- variant names (one checkpoint directory per grid point)
    Case(
        "sparsities-collapse",
        put("pruning.grid[0].sparsities", [0.5, 0.5000001]),
        ("pruning.grid[0] (methods[0] 'wanda', sparsities[1] 0.5000001)", "wanda_unstructured_0.5"),
    ),
    Case("sparsity-twice", put("pruning.grid[0].sparsities", [0.5, 0.5]), ("sparsities[1]",)),
    Case(
        "method-twice", put("pruning.grid[0].methods", ["wanda", "wanda"]), ("methods[1] 'wanda'",)
    ),
    Case(
        "grid-point-twice",
        lambda c: c["pruning"]["grid"].append(
            {"sparsity_type": "unstructured", "methods": ["sink"], "sparsities": [0.5]}
        ),
        ("pruning.grid[3] (methods[0] 'sink'", "sink_unstructured_0.5"),
    ),
    Case("sparsity-not-decimal", put("pruning.grid[0].sparsities", [1e-5]), ("sparsities[0]",)),
    # ---- sequence lengths against each model's maximum (32 in the micro config)
    Case(
        "calibration-longer-than-model",
        put("calibration.seqlen", 64),
        ("calibration.seqlen", "max_sequence_length"),
    ),
    Case("train-longer-than-model", put("models.tiny-ar.train.seq_len", 64), ("train.seq_len",)),
    Case("heldout-longer", put("evaluation.heldout.seqlen", 64), ("evaluation.heldout.seqlen",)),
    Case(
        "ppl-longer-than-model",
        put("evaluation.ppl.prompt_length", 25),
        ("evaluation.ppl.prompt_length", "prompt_length + chunk_size = 33"),
    ),
    Case("ppl-zero-chunk", put("evaluation.ppl.chunk_size", 0), ("evaluation.ppl.chunk_size",)),
    Case("ppl-rows-text", put("evaluation.ppl.rows", "all"), ("evaluation.ppl.rows",)),
    Case("unknown-ppl-key", put("evaluation.ppl.max_length", 1024), ("ppl.max_length",)),
    Case(
        "generation-longer-than-model",
        put(
            "evaluation.tasks.shakespeare_complete_line",
            {**GEN, "gen_length": 32, "steps": 32, "block_length": 32},
        ),  # fmt: skip
        ("evaluation.tasks.shakespeare_complete_line.gen_length",),
    ),
    Case(
        "hub-declares-shorter-max",
        put(
            "models.x",
            {
                **HUB,
                "arch": {"d_model": 32, "n_layers": 2, "n_heads": 2, "max_sequence_length": 16},
            },
        ),  # fmt: skip
        ("calibration.seqlen", "models.x.arch.max_sequence_length"),
    ),
    # ---- N:M against SparseGPT's blocksize and the layers' widths
    Case(
        "nm-blocksize",
        both(put("pruning.grid", [GRID_NM]), put("pruning.sparsegpt.blocksize", 6)),
        ("pruning.sparsegpt.blocksize", "2:4"),
    ),
    Case(
        "nm-width",
        both(put("pruning.grid", [GRID_48]), put("models.tiny-dlm.arch.mlp_hidden_size", 68)),
        ("pruning.grid[0].sparsity_type", "mlp_hidden_size"),
    ),
    # ---- lm-eval tasks, known offline
    Case("unknown-task", put("evaluation.tasks.hellaswagg", {}), ("evaluation.tasks.hellaswagg",)),
    Case(
        "local-task-metric",
        put("evaluation.tasks.shakespeare_next_line.metric", "exact_match"),
        ("evaluation.tasks.shakespeare_next_line.metric", "acc"),
    ),
    Case(
        "registry-task-metric",
        put("evaluation.tasks.arc_easy", {"metric": "mc2"}),
        ("evaluation.tasks.arc_easy.metric", "mc2"),
    ),
    Case(
        "unknown-filter",
        put(
            "evaluation.tasks.gsm8k",
            {**GEN, "metric": "exact_match,fuzzy", "gen_length": 8, "steps": 8, "block_length": 8},
        ),  # fmt: skip
        ("evaluation.tasks.gsm8k.metric", "flexible-extract"),
    ),
    Case("tag-not-task", put("evaluation.tasks.ai2_arc", {}), ("evaluation.tasks.ai2_arc", "tag")),
    Case("perplexity-task", put("evaluation.tasks.wikitext", {}), ("evaluation.tasks.wikitext",)),
    Case(
        "gen-not-multiple-of-block",
        put(
            "evaluation.tasks.shakespeare_complete_line",
            {**GEN, "gen_length": 8, "block_length": 3, "steps": 8},
        ),  # fmt: skip
        ("shakespeare_complete_line.gen_length", "block_length"),
    ),
    Case(
        "steps-not-multiple-of-blocks",
        put(
            "evaluation.tasks.shakespeare_complete_line",
            {**GEN, "gen_length": 8, "block_length": 4, "steps": 3},
        ),  # fmt: skip
        ("shakespeare_complete_line.steps",),
    ),
    Case(
        "too-many-shots",
        put("evaluation.tasks.shakespeare_next_line.num_fewshot", 25),
        ("shakespeare_next_line.num_fewshot",),
    ),
    # ---- the published table
    Case(
        "unknown-paper-name",
        put("models.tiny-dlm.paper_name", "LLaDA-8B"),
        ("models.tiny-dlm.paper_name", "LLaDA-8B-Base"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_config_is_refused_naming_the_key(case: Case):
    config = micro()
    case.change(config)
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    message = str(info.value)
    for word in case.words:
        assert word in message, f"{word!r} not in: {message}"
    assert "\n" not in message and len(message) < 500, message


# ----------------------------------------------------------- config files ---
MICRO_TEXT = MICRO.read_text()


def line(needle: str) -> int:
    """1-based line of `needle` in the micro config."""
    return MICRO_TEXT.splitlines().index(needle) + 1


FILE_CASES = {
    # a model defined twice: Snakemake's loader would keep the last one silently
    "duplicate-model": (
        MICRO_TEXT.replace("  tiny-ar:\n", "  tiny-dlm:\n"),
        ("duplicate key 'tiny-dlm'", f":{line('  tiny-ar:')}:3", f"line {line('  tiny-dlm:')}"),
    ),
    "duplicate-nested-key": (
        MICRO_TEXT.replace("  seqlen: 32\n", "  seqlen: 32\n  seqlen: 16\n", 1),
        ("duplicate key 'seqlen'",),
    ),
    "duplicate-top-level-section": (MICRO_TEXT + "seed: 3\n", ("duplicate key 'seed'",)),
    "unclosed-bracket": (  # reported where the parser gives up: the next line
        MICRO_TEXT.replace("  nsamples: 4", "  nsamples: [4"),
        ("YAML syntax error", f":{line('  nsamples: 4') + 1}:"),
    ),
    "tab-indentation": (
        MICRO_TEXT.replace("  nsamples: 4", "\tnsamples: 4"),
        (f":{line('  nsamples: 4')}:1", "'\\t'"),
    ),
    "bad-indentation": (
        MICRO_TEXT.replace("  seqlen: 32", "    seqlen: 32", 1),
        (f":{line('  seqlen: 32')}:",),
    ),
    "not-a-mapping": ("- a\n- b\n", ("must be a mapping",)),
    "json-duplicate": ('{"seed": 0, "seed": 1}', ("duplicate key 'seed'", ":1:")),
}


@pytest.mark.parametrize("name", list(FILE_CASES))
def test_bad_config_file_is_refused_with_its_position(name, tmp_path):
    text, words = FILE_CASES[name]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for word in words:
        assert word in message, f"{word!r} not in: {message}"
    assert "\n" not in message, message


def test_good_config_files_load():
    for path in (MICRO, ROOT / "config" / "config.yaml", ROOT / "config" / "paper.yaml"):
        assert load_config_file(path) == yaml.safe_load(path.read_text())


# ------------------------------------------------------------ run settings ---
@pytest.mark.parametrize(("cores", "jobs", "key"), [(0, None, "cores"), (-2, None, "cores"),
                                                    (1, 0, "jobs"), (None, -1, "jobs")])  # fmt: skip
def test_zero_cores_or_jobs_are_refused(cores, jobs, key):
    with pytest.raises(ConfigError, match=f"--{key}"):
        check_run_settings(cores, jobs)
    check_run_settings(1, None)
    check_run_settings(None, 50)


def test_catalogue_size():
    """The issue asks for at least 60 bad inputs."""
    assert len(CASES) + len(FILE_CASES) + 4 >= 60


# ------------------------------------------------------------ snakemake -n ---
def dry_run(tmp_path: Path, config: dict | str | None, *args: str) -> str:
    cmd = [str(SNAKEMAKE), "-n", *args]
    if config is not None:
        path = tmp_path / "bad.yaml"
        path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
        cmd += ["--configfile", str(path)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out and 'File "' not in out, out
    assert "Job stats" not in out and "rule " not in out, "jobs were planned"
    return out


def changed(*changes) -> dict:
    config = micro()
    for c in changes:
        c(config)
    return config


@pytest.mark.parametrize(
    ("config", "args", "words"),
    [
        (MICRO_TEXT.replace("  tiny-ar:\n", "  tiny-dlm:\n"), (), ("duplicate key 'tiny-dlm'",)),
        (changed(put("sinks.alpha", NAN)), (), ("sinks.alpha",)),
        (changed(drop("evaluation.tasks")), (), ("evaluation.tasks",)),
        (changed(put("evaluation.heldout.seqlen", 64)), (), ("evaluation.heldout.seqlen",)),
        (changed(put("pruning.grid[0].sparsities", [0.5, 0.5000001])), (), ("sparsities[1]",)),
        (None, ("--cores", "0"), ("--cores",)),
    ],
    ids=["duplicate-model", "nan", "no-tasks", "heldout-seqlen", "collision", "zero-cores"],
)
def test_snakemake_dry_run_refuses_with_one_line(tmp_path, config, args, words):
    out = dry_run(tmp_path, config, *args)
    errors = [line for line in out.splitlines() if line.startswith("ConfigError")]
    assert len(errors) == 1, out
    for word in words:
        assert word in errors[0], out


def test_profile_with_zero_jobs_is_refused(tmp_path):
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text("jobs: 0\n")
    out = dry_run(tmp_path, None, "--profile", str(profile))
    assert "ConfigError: --jobs / profile key jobs: 0" in out, out
