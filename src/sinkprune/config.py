"""Config validation beyond JSON Schema, and the names the DAG is built from (variants, slugs).

The schema (workflow/schemas/config.schema.yaml) checks types, ranges and unknown keys; the
cross-key rules below need Python. Every error names the offending key.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .evaluation.estimator import task_estimator

NM_TYPES = {"2:4": (2, 4), "4:8": (4, 8)}
STRUCTURED_METHODS = {"wanda_sp", "sink_sp"}
UNSTRUCTURED_METHODS = {"magnitude", "wanda", "dwanda", "sparsegpt", "sink", "sink_sgpt"}
SINK_METHODS = {"sink", "sink_sgpt", "sink_sp"}
#: sink-aware methods whose statistics come precomputed from rule sink_norms (no forward)
NORM_METHODS = {"sink", "sink_sp"}
#: what a variant name looks like (the Snakefile's wildcard constraint)
VARIANT_PATTERN = r"dense|[a-z_]+(-[a-z]+)*_(unstructured|structured|2of4|4of8)_[0-9.]+"

#: Per-variant options a `pruning.grid[*]` entry may set (config/README.md#pruning):
#: key -> (default, {non-default value: its token in the variant name}, methods that take it).
#: A variant's name carries its non-default options, e.g. `sink-unweighted_unstructured_0.75`.
VARIANT_OPTIONS: dict[str, tuple[str, dict[str, str], frozenset[str]]] = {
    "noise": ("random", {"grid": "grid"}, frozenset({"dwanda"})),
    "weighting": ("sink", {"none": "unweighted"}, frozenset(SINK_METHODS)),
    "norm": ("summed", {"rms": "rms"}, frozenset(NORM_METHODS)),
    "allocation": (
        "uniform",
        {"owl": "owl", "deeper": "deeper", "earlier": "earlier"},
        frozenset(UNSTRUCTURED_METHODS),
    ),
}
ALLOCATIONS = ("uniform", "owl", "deeper", "earlier")

#: The ablation ladder from Wanda to sink-aware Wanda (issue #18): one change per rung, each rung
#: a (method, options) pair; `pruning.ablation` adds every rung at its sparsities. What each rung
#: changes against the one below is `LADDER_CHANGES` (docs/methods.md#ablation-ladder).
WANDA_LADDER: tuple[tuple[str, dict[str, str]], ...] = (
    ("wanda", {}),
    ("dwanda", {}),
    ("dwanda", {"noise": "grid"}),
    ("sink", {"weighting": "none", "norm": "rms"}),
    ("sink", {"weighting": "none"}),
    ("sink", {}),
)
#: `sink_sgpt` differs from `sparsegpt` only by ω̄ (both clean and sequential), so its ω ≡ 1 rung
#: is `sparsegpt` itself (bit-identical masks, tests/test_ablation.py): a two-rung ladder.
SPARSEGPT_LADDER: tuple[tuple[str, dict[str, str]], ...] = (("sparsegpt", {}), ("sink_sgpt", {}))
LADDERS = {"wanda": WANDA_LADDER, "sparsegpt": SPARSEGPT_LADDER}


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
    check_variant_options(pruning)
    check_allocation(pruning)
    check_ablation(pruning)
    check_dwanda(pruning)


# ----------------------------------- baselines and ablations of issue #18: their own checks ---
def check_variant_options(pruning: dict) -> None:
    """`pruning.grid[*].{noise, weighting, norm, allocation}` only on the methods that take them;
    `pruning.grid[*].models` only names models of pruning.models."""
    for i, entry in enumerate(pruning.get("grid", [])):
        unknown = [m for m in entry.get("models", []) if m not in pruning.get("models", [])]
        if unknown:
            raise ConfigError(
                f"pruning.grid[{i}].models: {unknown} not in pruning.models "
                f"({pruning.get('models', [])})"
            )
        for key, (_, _, takers) in VARIANT_OPTIONS.items():
            if key not in entry:
                continue
            others = [m for m in entry["methods"] if m not in takers]
            if others:
                raise ConfigError(
                    f"pruning.grid[{i}].{key}: applies to {sorted(takers)} only, not to "
                    f"{others} (put them in a grid entry of their own)"
                )


def check_allocation(pruning: dict) -> None:
    """Non-uniform `allocation` only for unstructured sparsity, with every layer's sparsity in
    [0, 1]: OWL spreads the layers over less than ±2·lambda around the target (the normalised
    outlier ratios span [0, 2·lambda] and are centred on their mean), a depth schedule over
    exactly ±epsilon."""
    owl = pruning.get("owl", {}).get("lambda", 0.08)
    eps = pruning.get("schedule", {}).get("epsilon", 0.08)
    for i, entry in enumerate(pruning.get("grid", [])):
        allocation = entry.get("allocation", "uniform")
        if allocation == "uniform":
            continue
        where = f"pruning.grid[{i}].allocation"
        if entry["sparsity_type"] != "unstructured":
            raise ConfigError(
                f"{where}: '{allocation}' needs sparsity_type 'unstructured' (N:M fixes every "
                f"group, structured removes the same units in every layer), got "
                f"'{entry['sparsity_type']}'"
            )
        if allocation == "owl":
            key, value, spread = "pruning.owl.lambda", owl, 2 * owl
        else:
            key, value, spread = "pruning.schedule.epsilon", eps, eps
        for p in entry["sparsities"]:
            if p - spread < 0 or p + spread > 1:
                raise ConfigError(
                    f"{where}: '{allocation}' at sparsity {p} with {key} = {value} can give a "
                    f"layer a sparsity outside [0, 1] (needs {spread:g} <= sparsity <= "
                    f"{1 - spread:g})"
                )


def check_ablation(pruning: dict) -> None:
    """`pruning.ablation[*]`: the ladders take unstructured or N:M sparsity (N:M only at 0.5)."""
    for i, entry in enumerate(pruning.get("ablation", [])):
        stype = entry["sparsity_type"]
        if stype in NM_TYPES and any(s != 0.5 for s in entry["sparsities"]):
            raise ConfigError(
                f"pruning.ablation[{i}].sparsities: N:M sparsity_type '{stype}' requires "
                f"sparsity 0.5, got {entry['sparsities']}"
            )


def check_dwanda(pruning: dict) -> None:
    """`pruning.dwanda`: t ~ U[t_min, t_max] needs t_min <= t_max."""
    d = pruning.get("dwanda", {})
    if d.get("t_min", 0.0) > d.get("t_max", 1.0):
        raise ConfigError(
            f"pruning.dwanda.t_min ({d['t_min']}) must be <= pruning.dwanda.t_max ({d['t_max']})"
        )


@dataclass(frozen=True)
class Variant:
    """One pruned (or dense) checkpoint of a model: `{label}_{slug}_{sparsity}` or `dense`, where
    the label is the method followed by a `-token` per non-default option (VARIANT_OPTIONS)."""

    method: str
    sparsity_type: str = "dense"
    sparsity: float = 0.0
    noise: str = "random"
    weighting: str = "sink"
    norm: str = "summed"
    allocation: str = "uniform"

    @property
    def options(self) -> dict[str, str]:
        """The non-default options of this variant, in VARIANT_OPTIONS order."""
        return {
            key: getattr(self, key)
            for key, (default, _, _) in VARIANT_OPTIONS.items()
            if getattr(self, key) != default
        }

    @property
    def label(self) -> str:
        """The method part of the name: `sink`, `sink-unweighted-rms`, `wanda-owl`, ..."""
        tokens = [VARIANT_OPTIONS[k][1][v] for k, v in self.options.items()]
        return "-".join([self.method, *tokens])

    @property
    def name(self) -> str:
        if self.method == "dense":
            return "dense"
        return f"{self.label}_{type_slug(self.sparsity_type)}_{self.sparsity:g}"

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
    by_token = {
        token: (key, value)
        for key, (_, tokens, _) in VARIANT_OPTIONS.items()
        for value, token in tokens.items()
    }
    for slug, stype in slugs.items():
        marker = f"_{slug}_"
        if marker in name:
            label, sparsity = name.rsplit(marker, 1)
            method, *tokens = label.split("-")
            unknown = [t for t in tokens if t not in by_token]
            if unknown:
                raise ValueError(f"not a variant name: {name!r} (unknown options {unknown})")
            options = dict(by_token[t] for t in tokens)
            return Variant(method, stype, float(sparsity), **options)
    raise ValueError(f"not a variant name: {name!r}")


def grid_options(entry: dict) -> dict[str, str]:
    """The per-variant options a `pruning.grid[*]` entry sets (only the keys it names)."""
    return {key: entry[key] for key in VARIANT_OPTIONS if key in entry}


def ladder_variants(ladder: str, sparsity_type: str, sparsity: float) -> list[Variant]:
    """The rungs of ladder `wanda` or `sparsegpt` at one sparsity, bottom (the baseline) first."""
    return [Variant(m, sparsity_type, float(sparsity), **o) for m, o in LADDERS[ladder]]


def variants(config: dict, model: str) -> list[Variant]:
    """dense first, then the pruning grid (entries whose `models` include `model`), then the rungs
    of `pruning.ablation` not already in the grid (if `model` is in pruning.models), in config
    order, each name once."""
    out = [Variant("dense")]
    pruning = config.get("pruning", {})
    if model in pruning.get("models", []):
        for entry in pruning.get("grid", []):
            if model not in entry.get("models", [model]):
                continue
            for sparsity in entry["sparsities"]:
                for method in entry["methods"]:
                    options = grid_options(entry)
                    out.append(Variant(method, entry["sparsity_type"], float(sparsity), **options))
        for entry in pruning.get("ablation", []):
            for sparsity in entry["sparsities"]:
                for ladder in LADDERS:
                    out += ladder_variants(ladder, entry["sparsity_type"], sparsity)
    return list(dict.fromkeys(out))


#: sink-aware method -> the method it modifies (method.md §5)
BASELINE_OF = {"sink": "wanda", "sink_sgpt": "sparsegpt", "sink_sp": "wanda_sp"}


def allocation_comparisons(vs: list[Variant]) -> list[tuple[Variant, Variant]]:
    """(variant, reference) pairs of the allocation report, both in `vs`: every variant with a
    non-uniform allocation against the same variant allocated uniformly, and a sink-aware one
    against its baseline method with the same allocation (`sink-owl` vs `wanda-owl`)."""
    names = set(vs)
    pairs = []
    for v in vs:
        if v.allocation == "uniform":
            continue
        refs = [replace(v, allocation="uniform")]
        if v.method in BASELINE_OF:
            refs.append(replace(v, method=BASELINE_OF[v.method], weighting="sink", norm="summed"))
        pairs += [(v, r) for r in refs if r in names]
    return pairs


def timestep_grid(config: dict) -> list[tuple[int, float]]:
    """(step, t) pairs: steps sample_interval..steps every sample_interval, t = step/steps (method.md §2)."""
    d = config["diffusion"]
    return [
        (s, s / d["steps"])
        for s in range(d["sample_interval"], d["steps"] + 1, d["sample_interval"])
    ]
