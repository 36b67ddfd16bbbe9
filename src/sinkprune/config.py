"""Config validation beyond JSON Schema, and the names the DAG is built from (variants, slugs).

The schema (workflow/schemas/config.schema.yaml) checks types, ranges and unknown keys; the
cross-key rules below need Python. Every error names the offending key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .evaluation.estimator import task_estimator

NM_TYPES = {"2:4": (2, 4), "4:8": (4, 8)}
STRUCTURED_METHODS = {"wanda_sp", "sink_sp"}
UNSTRUCTURED_METHODS = {"magnitude", "wanda", "sparsegpt", "sink", "sink_sgpt"}
SINK_METHODS = {"sink", "sink_sgpt", "sink_sp"}
#: sink-aware methods whose statistics come precomputed from rule sink_norms (no forward)
NORM_METHODS = {"sink", "sink_sp"}
#: what a variant name looks like (the Snakefile's wildcard constraint)
VARIANT_PATTERN = r"dense|[a-z_]+_(unstructured|structured|2of4|4of8)_[0-9.]+"


class ConfigError(ValueError):
    """A config value is invalid; the message names the key."""


def validate_config(config: dict, schema_path: str | Path, root: str | Path = ".") -> dict:
    """Validate `config` in place against the schema (filling defaults), then cross-check keys
    and the whole config (sinkprune.config_checks). `root` is the working directory (where
    `corpus.path` and downloaded hub checkpoints are looked up)."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from . import config_checks as cc

    cc.check_finite(config)
    check_schema(config, schema_path)
    hub_lengths = cc.declared_hub_lengths(config)
    try:
        validate(config, str(schema_path), set_default=True)
    except WorkflowError as err:
        raise ConfigError(f"invalid config: {err}") from None
    check_config(config)
    cc.check_head_dims(config)
    cc.check_variant_names(config)
    cc.check_nm_shapes(config)
    cc.check_tasks(config)
    cc.check_sequence_lengths(config, hub_lengths)
    cc.check_paper_names(config, Path(schema_path).parents[2] / "resources" / "paper_results.csv")
    cc.check_corpus_file(config, root)
    cc.check_hub_checkpoints(config, hub_lengths, root)
    return config


def check_schema(config: dict, schema_path: str | Path) -> None:
    """JSON-Schema check with a one-line error naming the key (e.g. `corpus.bogus`)."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    # an integer key takes integers only: JSON Schema would accept 4.0, which range() refuses
    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool)
    )
    validator = jsonschema.validators.extend(base, type_checker=checker)(schema)
    err = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if err is None:
        return
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
    key = key.lstrip(".")
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [k for k in err.validator_value if k not in err.instance]
        full = f"{key}.{missing[0]}" if key else missing[0]
        raise ConfigError(f"config key {full} is required (missing under {key or 'the top level'})")
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = err.schema.get("properties", {})
        unknown = [k for k in err.instance if k not in known]
        names = ", ".join(f"{key}.{k}" if key else k for k in unknown)
        raise ConfigError(
            f"unknown config key {names} (allowed under {key or 'the top level'}: {sorted(known)})"
        )
    raise ConfigError(f"config key {key or '(top level)'}: {err.message}")


def check_config(config: dict) -> None:
    """Cross-key rules the schema cannot express. Raises ConfigError naming the key."""
    models = config.get("models", {})
    for name, m in models.items():
        if m["source"] == "train" and "arch" not in m:
            raise ConfigError(
                f"models.{name}.arch is required when models.{name}.source is 'train'"
            )
        if m["source"] == "hub" and "hub_id" not in m:
            raise ConfigError(
                f"models.{name}.hub_id is required when models.{name}.source is 'hub'"
            )
        arch = m.get("arch")
        if arch:
            heads, kv = arch["n_heads"], arch.get("n_kv_heads", arch["n_heads"])
            if arch["d_model"] % heads:
                raise ConfigError(f"models.{name}.arch.d_model must be divisible by n_heads")
            if heads % kv:
                raise ConfigError(f"models.{name}.arch.n_heads must be divisible by n_kv_heads")
    corpus = config.get("corpus", {})
    kind = corpus.get("kind", "shakespeare")
    if kind == "text_file" and not corpus.get("path"):
        raise ConfigError("corpus.path is required when corpus.kind is 'text_file'")
    if kind == "hf_dataset" and not corpus.get("dataset"):
        raise ConfigError("corpus.dataset is required when corpus.kind is 'hf_dataset'")
    if corpus.get("valid_fraction", 0) + corpus.get("test_fraction", 0) >= 1:
        raise ConfigError("corpus.valid_fraction + corpus.test_fraction must be < 1")
    pruning = config.get("pruning", {})
    for key in ("pruning.models", "evaluation.models"):
        section, _ = key.split(".")
        for m in config.get(section, {}).get("models", []):
            if m not in models:
                raise ConfigError(f"{key}: unknown model '{m}' (known: {sorted(models)})")
    for i, entry in enumerate(pruning.get("grid", [])):
        where = f"pruning.grid[{i}]"
        stype = entry["sparsity_type"]
        for method in entry["methods"]:
            if stype == "structured" and method not in STRUCTURED_METHODS:
                raise ConfigError(
                    f"{where}.methods: '{method}' is not a structured method "
                    f"(sparsity_type 'structured' takes {sorted(STRUCTURED_METHODS)})"
                )
            if stype != "structured" and method in STRUCTURED_METHODS:
                raise ConfigError(
                    f"{where}.methods: '{method}' needs sparsity_type 'structured', not '{stype}'"
                )
        if stype in NM_TYPES and any(s != 0.5 for s in entry["sparsities"]):
            raise ConfigError(
                f"{where}.sparsities: N:M sparsity_type '{stype}' requires sparsity 0.5, "
                f"got {entry['sparsities']}"
            )
    for m in pruning.get("models", []):
        if models[m]["kind"] != "dlm":
            raise ConfigError(
                f"pruning.models: '{m}' is kind '{models[m]['kind']}', expected 'dlm'"
            )
    for task in config.get("evaluation", {}).get("tasks", {}):
        try:
            task_estimator(config, task)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    t = config.get("diffusion", {})
    if t and t["sample_interval"] > t["steps"]:
        raise ConfigError("diffusion.sample_interval must be <= diffusion.steps")


@dataclass(frozen=True)
class Variant:
    """One pruned (or dense) checkpoint of a model: `{method}_{slug}_{sparsity}` or `dense`."""

    method: str
    sparsity_type: str = "dense"
    sparsity: float = 0.0

    @property
    def name(self) -> str:
        if self.method == "dense":
            return "dense"
        return f"{self.method}_{type_slug(self.sparsity_type)}_{self.sparsity:g}"

    @property
    def nm(self) -> tuple[int, int] | None:
        return NM_TYPES.get(self.sparsity_type)


def type_slug(sparsity_type: str) -> str:
    """Path-safe name of a sparsity type: '2:4' -> '2of4'."""
    return sparsity_type.replace(":", "of")


def parse_variant(name: str) -> Variant:
    """Inverse of Variant.name; raises ValueError on an unknown pattern."""
    if name == "dense":
        return Variant("dense")
    slugs = {type_slug(t): t for t in ["unstructured", "structured", *NM_TYPES]}
    for slug, stype in slugs.items():
        marker = f"_{slug}_"
        if marker in name:
            method, sparsity = name.rsplit(marker, 1)
            return Variant(method, stype, float(sparsity))
    raise ValueError(f"not a variant name: {name!r}")


def variants(config: dict, model: str) -> list[Variant]:
    """dense first, then the pruning grid (if `model` is in pruning.models), in config order."""
    out = [Variant("dense")]
    pruning = config.get("pruning", {})
    if model in pruning.get("models", []):
        for entry in pruning.get("grid", []):
            for sparsity in entry["sparsities"]:
                for method in entry["methods"]:
                    out.append(Variant(method, entry["sparsity_type"], float(sparsity)))
    return out


def timestep_grid(config: dict) -> list[tuple[int, float]]:
    """(step, t) pairs: steps sample_interval..steps every sample_interval, t = step/steps (method.md §2)."""
    d = config["diffusion"]
    return [
        (s, s / d["steps"])
        for s in range(d["sample_interval"], d["steps"] + 1, d["sample_interval"])
    ]
