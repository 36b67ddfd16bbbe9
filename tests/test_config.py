"""Config validation (schema + sinkprune.config.check_config), variant names, and the dry run.

Each bad case is one test: the error must name the offending key (config/README.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sinkprune.config import (
    VARIANT_PATTERN,
    ConfigError,
    Variant,
    parse_variant,
    validate_config,
    variants,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT = ROOT / "config" / "config.yaml"
MICRO = ROOT / ".test" / "config" / "config.yaml"
PAPER = ROOT / "config" / "paper.yaml"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def load(path: Path = DEFAULT) -> dict:
    return yaml.safe_load(path.read_text())


def rejects(config: dict, *words: str) -> str:
    """Validate and expect a ConfigError whose message contains every word; return it."""
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in error message: {message}"
    assert len(message) < 400, "error message should be one readable line"
    return message


# ------------------------------------------------------------------ good configs ---
@pytest.mark.parametrize("path", [DEFAULT, MICRO, PAPER], ids=["default", "micro", "paper"])
def test_shipped_configs_validate(path):
    if not path.is_file():
        pytest.skip(f"{path.name} does not exist yet")
    config = load(path)
    validate_config(config, SCHEMA)
    # defaults are filled in place
    assert config["corpus"]["valid_fraction"] == 0.05
    assert config["pruning"]["sparsegpt"]["blocksize"] == 128
    assert isinstance(config["seed"], int)


def test_defaults_filled_when_sections_omitted():
    config = load()
    for key in ("seed", "corpus", "tokenizer", "diffusion", "attention", "sinks"):
        del config[key]
    validate_config(config, SCHEMA)
    assert config["seed"] == 0
    assert config["corpus"] == {
        "kind": "shakespeare",
        "edition": "modern",
        "valid_fraction": 0.05,
        "test_fraction": 0.1,
    }
    assert config["tokenizer"] == {"vocab_size": 512}
    assert config["diffusion"] == {"steps": 50, "sample_interval": 5, "eps": 0.001}


# ------------------------------------------------------------------ bad configs ---
def test_unknown_top_level_key():
    config = load()
    config["prunning"] = {}
    rejects(config, "prunning")


def test_unknown_nested_key():
    config = load()
    config["corpus"]["vocab"] = 3
    rejects(config, "corpus.vocab")


def test_unknown_key_inside_model():
    config = load()
    config["models"]["tiny-dlm"]["arch"]["n_layer"] = 2
    rejects(config, "models.tiny-dlm.arch.n_layer")


def test_wrong_type():
    config = load()
    config["calibration"]["nsamples"] = "sixteen"
    rejects(config, "calibration.nsamples", "integer")


@pytest.mark.parametrize("sparsity", [0.0, 1.0, 1.5, -0.1])
def test_sparsity_outside_open_unit_interval(sparsity):
    config = load()
    config["pruning"]["grid"][0]["sparsities"] = [0.5, sparsity]
    rejects(config, "pruning.grid[0].sparsities[1]")


def test_nm_requires_half_sparsity():
    config = load()
    entry = {"sparsity_type": "2:4", "methods": ["wanda"], "sparsities": [0.5, 0.6]}
    config["pruning"]["grid"] = [entry]
    rejects(config, "pruning.grid[0].sparsities", "2:4", "0.5")


def test_unknown_method():
    config = load()
    config["pruning"]["grid"][0]["methods"] = ["wanda", "obs"]
    rejects(config, "pruning.grid[0].methods[1]", "obs")


def test_unknown_model_in_pruning_models():
    config = load()
    config["pruning"]["models"] = ["tiny-dlm", "llada-8b"]
    rejects(config, "pruning.models", "llada-8b")


def test_unknown_model_in_evaluation_models():
    config = load()
    config["evaluation"]["models"] = ["nope"]
    rejects(config, "evaluation.models", "nope")


def test_unknown_corpus_kind():
    config = load()
    config["corpus"]["kind"] = "wikipedia"
    rejects(config, "corpus.kind", "wikipedia")


def test_structured_method_with_unstructured_type():
    config = load()
    config["pruning"]["grid"] = [
        {"sparsity_type": "unstructured", "methods": ["sink_sp"], "sparsities": [0.5]}
    ]
    rejects(config, "pruning.grid[0].methods", "sink_sp", "structured")


def test_unstructured_method_with_structured_type():
    config = load()
    config["pruning"]["grid"] = [
        {"sparsity_type": "structured", "methods": ["wanda"], "sparsities": [0.3]}
    ]
    rejects(config, "pruning.grid[0].methods", "wanda")


def test_text_file_corpus_needs_path():
    config = load()
    config["corpus"]["kind"] = "text_file"
    rejects(config, "corpus.path")


def test_corpus_fractions_leave_no_train():
    config = load()
    config["corpus"].update(valid_fraction=0.5, test_fraction=0.5)
    rejects(config, "corpus.valid_fraction", "corpus.test_fraction")


def test_vocab_too_small():
    config = load()
    config["tokenizer"]["vocab_size"] = 100
    rejects(config, "tokenizer.vocab_size")


# ------------------------------------ baselines, ablation ladder, allocation (issue #18) ---
def grid_entry(**kw) -> dict:
    return {"sparsity_type": "unstructured", "methods": ["wanda"], "sparsities": [0.5], **kw}


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        (grid_entry(allocation="owls"), ["pruning.grid[0].allocation", "owls"]),
        (grid_entry(weighting="omega"), ["pruning.grid[0].weighting", "omega"]),
        (grid_entry(norm="l1"), ["pruning.grid[0].norm", "l1"]),
        (grid_entry(noise="uniform"), ["pruning.grid[0].noise", "uniform"]),
        (grid_entry(weighting="none"), ["pruning.grid[0].weighting", "wanda"]),
        (grid_entry(methods=["sink", "wanda"], norm="rms"), ["pruning.grid[0].norm", "wanda"]),
        (grid_entry(methods=["sink"], noise="grid"), ["pruning.grid[0].noise", "dwanda"]),
        (
            grid_entry(sparsity_type="2:4", allocation="owl"),
            ["pruning.grid[0].allocation", "unstructured", "2:4"],
        ),
        (
            grid_entry(sparsity_type="structured", methods=["sink_sp"], allocation="deeper"),
            ["pruning.grid[0]"],
        ),
        (grid_entry(models=["tiny-ar"]), ["pruning.grid[0].models", "tiny-ar"]),
        (grid_entry(models=[]), ["pruning.grid[0].models"]),
        (grid_entry(sparsities=[0.9], allocation="owl"), ["pruning.owl.lambda", "0.9"]),
        (grid_entry(sparsities=[0.05], allocation="earlier"), ["pruning.schedule.epsilon"]),
    ],
)
def test_bad_variant_options_are_refused(entry, words):
    config = load()
    config["pruning"]["grid"] = [entry]
    rejects(config, *words)


@pytest.mark.parametrize(
    ("section", "value", "words"),
    [
        ("dwanda", {"mask_repeats": 0}, ["pruning.dwanda.mask_repeats"]),
        ("dwanda", {"t_min": -0.1}, ["pruning.dwanda.t_min"]),
        ("dwanda", {"t_max": 1.5}, ["pruning.dwanda.t_max"]),
        ("dwanda", {"t_min": 0.6, "t_max": 0.4}, ["pruning.dwanda.t_min", "pruning.dwanda.t_max"]),
        ("dwanda", {"repeats": 4}, ["pruning.dwanda.repeats"]),
        ("owl", {"m": 0}, ["pruning.owl.m"]),
        ("owl", {"lambda": 0.5}, ["pruning.owl.lambda"]),
        ("owl", {"lambda": -0.1}, ["pruning.owl.lambda"]),
        ("schedule", {"epsilon": 1.0}, ["pruning.schedule.epsilon"]),
        ("schedule", {"eps": 0.1}, ["pruning.schedule.eps"]),
        (
            "ablation",
            [{"sparsity_type": "structured", "sparsities": [0.3]}],
            ["pruning.ablation[0].sparsity_type"],
        ),  # fmt: skip
        (
            "ablation",
            [{"sparsity_type": "2:4", "sparsities": [0.75]}],
            ["pruning.ablation[0].sparsities", "2:4"],
        ),  # fmt: skip
        (
            "ablation",
            [{"sparsity_type": "unstructured", "sparsities": [1.0]}],
            ["pruning.ablation[0].sparsities[0]"],
        ),  # fmt: skip
        ("ablation", [{"sparsities": [0.5]}], ["pruning.ablation[0]", "sparsity_type"]),
    ],
)
def test_bad_baseline_settings_are_refused(section, value, words):
    config = load()
    config["pruning"][section] = value
    rejects(config, *words)


def test_variant_options_and_ablation_make_variants():
    config = load()
    config["pruning"]["grid"] = [
        grid_entry(methods=["wanda", "sink"], sparsities=[0.75], allocation="owl"),
        grid_entry(methods=["sink"], weighting="none", norm="rms"),
        grid_entry(methods=["dwanda"], noise="grid"),
    ]
    config["pruning"]["ablation"] = [{"sparsity_type": "unstructured", "sparsities": [0.5]}]
    validate_config(config, SCHEMA)
    names = [v.name for v in variants(config, "tiny-dlm")]
    assert names == [
        "dense",
        "wanda-owl_unstructured_0.75",
        "sink-owl_unstructured_0.75",
        "sink-unweighted-rms_unstructured_0.5",
        "dwanda-grid_unstructured_0.5",
        # the ladders' other rungs, each once
        "wanda_unstructured_0.5",
        "dwanda_unstructured_0.5",
        "sink-unweighted_unstructured_0.5",
        "sink_unstructured_0.5",
        "sparsegpt_unstructured_0.5",
        "sink_sgpt_unstructured_0.5",
    ]
    assert parse_variant("sink-unweighted-rms_unstructured_0.5") == Variant(
        "sink", "unstructured", 0.5, weighting="none", norm="rms"
    )
    assert parse_variant("wanda-owl_unstructured_0.75").allocation == "owl"
    with pytest.raises(ValueError, match="unknown options"):
        parse_variant("sink-bogus_unstructured_0.5")


def test_grid_entry_models_restrict_its_variants():
    config = load()
    config["models"]["tiny-dlm2"] = config["models"]["tiny-dlm"]
    config["pruning"]["models"] = ["tiny-dlm", "tiny-dlm2"]
    config["pruning"]["grid"] = [grid_entry(), grid_entry(methods=["dwanda"], models=["tiny-dlm2"])]
    config["pruning"]["ablation"] = []
    validate_config(config, SCHEMA)
    assert [v.name for v in variants(config, "tiny-dlm")] == ["dense", "wanda_unstructured_0.5"]
    assert [v.name for v in variants(config, "tiny-dlm2")][-1] == "dwanda_unstructured_0.5"


# ------------------------------------------------------------------ variants ---
def test_variants_of_default_config_round_trip():
    config = load()
    validate_config(config, SCHEMA)
    got = variants(config, "tiny-dlm")
    # independent expectation from the grid in config/config.yaml
    expected = ["dense"]
    for entry in config["pruning"]["grid"]:
        slug = entry["sparsity_type"].replace(":", "of")
        alloc = "" if entry.get("allocation", "uniform") == "uniform" else f"-{entry['allocation']}"
        for s in entry["sparsities"]:
            expected += [f"{m}{alloc}_{slug}_{s:g}" for m in entry["methods"]]
    # then the ablation ladders' rungs that the grid does not already hold
    rungs = ["dwanda", "dwanda-grid", "sink-unweighted-rms", "sink-unweighted"]
    (ladder,) = config["pruning"]["ablation"]
    expected += [
        f"{m}_{ladder['sparsity_type']}_{s:g}" for s in ladder["sparsities"] for m in rungs
    ]
    assert [v.name for v in got] == expected
    assert len(got) == 1 + 5 * 2 + 5 + 2 * 2 + 2 + 4
    for v in got:
        assert parse_variant(v.name) == v


def test_variant_names_match_snakemake_wildcard_constraint():
    common = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    assert "variant=VARIANT_PATTERN," in common
    pattern = VARIANT_PATTERN
    config = load()
    validate_config(config, SCHEMA)
    for v in variants(config, "tiny-dlm"):
        assert re.fullmatch(pattern, v.name), v.name


def test_parse_variant_examples():
    assert parse_variant("dense") == Variant("dense")
    assert parse_variant("sink_sgpt_2of4_0.5") == Variant("sink_sgpt", "2:4", 0.5)
    assert parse_variant("sink_sp_structured_0.3") == Variant("sink_sp", "structured", 0.3)
    assert parse_variant("wanda_unstructured_0.75").nm is None
    assert parse_variant("magnitude_4of8_0.5").nm == (4, 8)
    with pytest.raises(ValueError):
        parse_variant("wanda_semistructured_0.5")


def test_unpruned_model_has_only_dense():
    config = load()
    validate_config(config, SCHEMA)
    assert [v.name for v in variants(config, "tiny-ar")] == ["dense"]


# ------------------------------------------------------------------ snakemake -n ---
def snakemake(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(
        [str(SNAKEMAKE), "-n", "--cores", "1", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def missing_rule_files() -> list[str]:
    snakefile = (ROOT / "Snakefile").read_text()
    included = re.findall(r'^include:\s*"([^"]+)"', snakefile, flags=re.MULTILINE)
    return [f for f in included if not (ROOT / f).is_file()]


@pytest.mark.parametrize(
    ("override", "key"),
    [("bogus_key=1", "bogus_key"), ("tokenizer={'vocab_size': 'big'}", "tokenizer.vocab_size")],
)
def test_dry_run_fails_fast_on_bad_config(override, key):
    proc = snakemake("--config", override)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "ConfigError" in out and key in out, out
    assert "Job stats" not in out and "localrule" not in out, "jobs were planned"


@pytest.mark.skipif(
    bool(missing_rule_files()),
    reason=f"rule files listed in Snakefile do not exist yet: {missing_rule_files()}",
)
@pytest.mark.parametrize("configfile", [None, MICRO], ids=["default", "micro"])
def test_dry_run_builds_dag(configfile):
    args = ["--configfile", str(configfile)] if configfile else []
    proc = snakemake(*args, "--forceall", "--quiet", "rules")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for rule in ("corpus", "tokenizer"):
        assert re.search(rf"\b{rule}\b", out), f"rule {rule} not planned:\n{out}"


# ------------------------------------------------------------------ documentation ---
def schema_keys(node: dict, defs: dict, prefix: str = "") -> list[str]:
    """Dotted key paths of the schema, `<name>` for free-form mappings, `[*]` for list items."""
    if "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[1]], **node}
    keys = []
    for key, sub in node.get("properties", {}).items():
        keys.append(prefix + key)
        keys += schema_keys(sub, defs, prefix + key + ".")
    if isinstance(node.get("additionalProperties"), dict):
        keys += schema_keys(node["additionalProperties"], defs, prefix + "<name>.")
    if isinstance(node.get("items"), dict):
        keys += schema_keys(node["items"], defs, prefix.rstrip(".") + "[*].")
    return keys


def test_every_schema_key_is_documented_in_config_readme():
    schema = yaml.safe_load(SCHEMA.read_text())
    readme = (ROOT / "config" / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    # the README names free-form mappings by what they hold (<name>, <task>)
    documented = {re.sub(r"<[a-z]+>", "<name>", k) for k in documented}
    documented |= set(re.findall(r"^## (\S+)$", readme, flags=re.MULTILINE))  # sections
    missing = [k for k in schema_keys(schema, schema["$defs"]) if k not in documented]
    assert not missing, f"config/README.md does not document: {missing}"
    for section in schema["properties"]:
        assert f"\n## {section}\n" in readme, f"no '## {section}' section (anchor #{section})"
