"""Whole-config checks run before any job: what the schema and the per-key rules cannot see.

`sinkprune.config.validate_config` calls these after the schema; each raises `ConfigError` with
one line that names the key, the offending value and what is allowed:

- `load_config_file`: a config file read with duplicate keys refused and YAML errors located
  (file:line:column) — Snakemake's own loader keeps the last duplicate silently;
- `check_finite`: NaN / infinity anywhere (JSON Schema lets them through as numbers);
- `check_variant_names`: two grid points that would share one checkpoint directory;
- `check_sequence_lengths`: every configured length against each model's maximum;
- `check_nm_shapes`: N:M patterns against SparseGPT's blocksize and the layers' input widths;
- `check_head_dims`: an even head size (RoPE rotates pairs of channels);
- `check_tasks`: lm-eval task names, metrics and generation settings (offline, `registry`);
- `check_paper_names`: `models.<m>.paper_name` against `resources/paper_results.csv`;
- `check_hub_checkpoints`: a downloaded checkpoint against the config's declared maximum length;
- `check_run_settings`: `--cores` / `--jobs` (or a profile's `cores:` / `jobs:`) of at least 1;
- `check_corpus_file`: `corpus.path` exists.

`exit_on_config_error` turns a ConfigError at DAG build into one line and exit status 1;
`python -m sinkprune.config_checks FILE...` checks config files outside Snakemake.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import yaml

from .config import NM_TYPES, VARIANT_PATTERN, ConfigError, Variant, grid_options

#: tokens a generation prompt keeps at least (gen_length + this <= the model's maximum)
MIN_PROMPT_TOKENS = 8


# ------------------------------------------------------------------ files ---
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise ConfigError(
                f"{loader.name}:{mark.line + 1}:{mark.column + 1}: duplicate key {key!r} "
                f"(first given on line {seen[key]}); every key may appear once per mapping"
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_config_file(path: str | Path) -> dict:
    """A YAML/JSON config file as a dict; ConfigError with file:line:column on a syntax error or a
    duplicate key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read config file ({err})") from None
    loader = _StrictLoader(text)
    loader.name = str(path)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = " ".join(str(p) for p in (err.context, err.problem) if p)
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: YAML error: {err}") from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a config file must be a mapping of keys, got {type(data).__name__}"
        )
    return data


def check_config_files(paths) -> None:
    """Re-read every config file Snakemake loaded, with duplicate keys refused."""
    for path in paths:
        load_config_file(path)


# ----------------------------------------------------------------- values ---
def check_finite(value, key: str = "") -> None:
    """Refuse NaN and ±infinity anywhere in the config (YAML `.nan`, `.inf`)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(
            f"config key {key or '(top level)'}: {value} is not allowed (finite numbers only)"
        )
    if isinstance(value, dict):
        for k, v in value.items():
            check_finite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_finite(v, f"{key}[{i}]")


def check_variant_names(config: dict) -> None:
    """Every grid point must get its own checkpoint name (`{label}_{slug}_{sparsity:g}`, the label
    carrying the entry's options): 0.5 and 0.5000001 would share `wanda_unstructured_0.5` and be
    reported twice. (`pruning.ablation` may repeat grid variants: its rungs are added once.)"""
    seen: dict[str, str] = {}
    for i, entry in enumerate(config.get("pruning", {}).get("grid", [])):
        stype = entry["sparsity_type"]
        for j, sparsity in enumerate(entry["sparsities"]):
            for k, method in enumerate(entry["methods"]):
                where = f"pruning.grid[{i}] (methods[{k}] {method!r}, sparsities[{j}] {sparsity!r})"
                name = Variant(method, stype, float(sparsity), **grid_options(entry)).name
                if not re.fullmatch(VARIANT_PATTERN, name):
                    raise ConfigError(
                        f"pruning.grid[{i}].sparsities[{j}]: sparsity {sparsity!r} gives the "
                        f"variant name {name!r}, which is not a plain decimal; write it like 0.25"
                    )
                if name in seen:
                    raise ConfigError(
                        f"{where} gives variant {name!r}, the same as {seen[name]}; each "
                        "(method, sparsity_type, sparsity) may appear once, and sparsities "
                        "must differ within 6 significant digits"
                    )
                seen[name] = where


# -------------------------------------------------------- model lengths ---
def declared_hub_lengths(raw: dict) -> dict[str, int]:
    """{hub model: arch.max_sequence_length} as written in the config, before schema defaults
    (the default of 64 describes embedded models, not a hub checkpoint)."""
    out = {}
    for name, m in (raw.get("models") or {}).items():
        if isinstance(m, dict) and m.get("source") == "hub":
            arch = m.get("arch")
            if isinstance(arch, dict) and "max_sequence_length" in arch:
                out[name] = arch["max_sequence_length"]
    return out


def max_length(config: dict, model: str, hub_lengths: dict[str, int]) -> tuple[int, str] | None:
    """(maximum sequence length, the key that sets it) of a model, or None when only the
    downloaded checkpoint knows (then the first job that loads it checks)."""
    m = config["models"][model]
    key = f"models.{model}.arch.max_sequence_length"
    if m["source"] == "train":
        return m["arch"]["max_sequence_length"], key
    if model in hub_lengths:
        return hub_lengths[model], key
    return None


def is_generation(name: str) -> bool:
    info = task_info(name)
    return info is not None and info.output_type == "generate_until"


def check_sequence_lengths(config: dict, hub_lengths: dict[str, int]) -> None:
    """calibration.seqlen (every model), train.seq_len (embedded), evaluation.heldout.seqlen,
    evaluation.ppl.prompt_length + chunk_size and generation budgets (evaluated models) must fit
    each model's maximum."""
    models = config["models"]
    evaluated = config.get("evaluation", {}).get("models", [])

    def fits(model: str, length: int, key: str, what: str = "") -> None:
        limit = max_length(config, model, hub_lengths)
        if limit is not None and length > limit[0]:
            raise ConfigError(
                f"{key}: {what or length} exceeds {limit[1]} = {limit[0]}; "
                f"use at most {limit[0]} or a model with a longer maximum"
            )

    for name, m in models.items():
        fits(name, config["calibration"]["seqlen"], "calibration.seqlen")
        if m["source"] == "train":
            seq_len = m.get("train", {}).get("seq_len", 64)
            fits(name, seq_len, f"models.{name}.train.seq_len")
    heldout = config.get("evaluation", {}).get("heldout", {})
    ppl = config.get("evaluation", {}).get("ppl", {})
    ppl_len = ppl.get("prompt_length", 960) + ppl.get("chunk_size", 64)
    for name in evaluated:
        fits(name, heldout.get("seqlen", 64), "evaluation.heldout.seqlen")
        fits(name, ppl_len, "evaluation.ppl.prompt_length",
             f"prompt_length + chunk_size = {ppl_len}")  # fmt: skip
        for task, settings in config["evaluation"]["tasks"].items():
            if is_generation(task):
                gen = settings.get("gen_length", 256)
                key = f"evaluation.tasks.{task}.gen_length"
                fits(name, gen + MIN_PROMPT_TOKENS, key,
                     f"{gen} + {MIN_PROMPT_TOKENS} prompt tokens")  # fmt: skip


# ------------------------------------------------------------------- N:M ---
def input_widths(arch: dict) -> dict[str, int]:
    """Input width of the linears of a block (the dimension N:M groups run along)."""
    d = arch["d_model"]
    head_dim = d // arch["n_heads"]
    return {
        "d_model (q/k/v, gate, up)": d,
        "n_heads·head_dim (attn_out)": arch["n_heads"] * head_dim,
        "mlp_hidden_size (down)": arch.get("mlp_hidden_size", 4 * d),
    }


def check_nm_shapes(config: dict) -> None:
    """An N:M pattern needs SparseGPT's blocksize and every linear's input width divisible by M."""
    pruning = config.get("pruning", {})
    blocksize = pruning.get("sparsegpt", {}).get("blocksize", 128)
    for i, entry in enumerate(pruning.get("grid", [])):
        if entry["sparsity_type"] not in NM_TYPES:
            continue
        n, m = NM_TYPES[entry["sparsity_type"]]
        where = f"pruning.grid[{i}]"
        solver = sorted({"sparsegpt", "sink_sgpt"} & set(entry["methods"]))
        if solver and blocksize % m:
            raise ConfigError(
                f"pruning.sparsegpt.blocksize: {blocksize} is not a multiple of M = {m}, which "
                f"{where} ('{entry['sparsity_type']}' with {solver}) needs"
            )
        for model in pruning.get("models", []):
            arch = config["models"][model].get("arch")
            if not arch:
                continue  # a hub model without `arch`: pruning checks the loaded shapes
            for what, width in input_widths(arch).items():
                if width % m:
                    raise ConfigError(
                        f"{where}.sparsity_type: '{entry['sparsity_type']}' needs every layer "
                        f"input width divisible by {m}, but models.{model}.arch gives "
                        f"{what} = {width}"
                    )


def check_head_dims(config: dict) -> None:
    """Rotary embeddings rotate pairs of channels: d_model / n_heads must be even."""
    for name, m in config["models"].items():
        arch = m.get("arch")
        if arch and (arch["d_model"] // arch["n_heads"]) % 2:
            raise ConfigError(
                f"models.{name}.arch: head size d_model / n_heads = "
                f"{arch['d_model']} / {arch['n_heads']} is odd; RoPE needs an even head size"
            )


# ----------------------------------------------------------------- tasks ---
def task_info(name: str):
    """registry.TaskInfo of a local or lm-eval task name (None when unknown)."""
    from .evaluation.registry import local_task_info, registry_task_info
    from .evaluation.tasks import LOCAL_TASKS

    if name in LOCAL_TASKS:
        return local_task_info(name)
    return registry_task_info(name)


def check_tasks(config: dict) -> None:
    """Every evaluation.tasks entry: a known task (local, or in lm-eval's registry) or group with
    an aggregate score, a metric it reports, and generation settings the sampler accepts."""
    from .evaluation.registry import close_names
    from .evaluation.tasks import FEWSHOT_POOL, LOCAL_TASKS

    evaluation = config.get("evaluation", {})
    tasks = evaluation.get("tasks", {})
    local = [t for t in tasks if t in LOCAL_TASKS]
    if local and not evaluation.get("include_local_tasks", True):
        raise ConfigError(
            f"evaluation.include_local_tasks is false but evaluation.tasks lists the local "
            f"tasks {local}; set it to true or remove them"
        )
    for name, settings in tasks.items():
        key = f"evaluation.tasks.{name}"
        info = task_info(name)
        if info is None:
            hint = close_names(name)
            raise ConfigError(
                f"{key}: no lm-eval task, group or sinkprune local task is called {name!r}"
                + (f" (did you mean {', '.join(hint)}?)" if hint else "")
                + f"; local tasks: {list(LOCAL_TASKS)}"
            )
        if info.kind == "tag":
            raise ConfigError(
                f"{key}: {name!r} is an lm-eval tag (a set of tasks without one score, e.g. "
                f"{info.members[:4]}); list its tasks under evaluation.tasks instead"
            )
        if info.kind == "group" and not info.metrics:
            raise ConfigError(
                f"{key}: lm-eval group {name!r} has no aggregate score; list its tasks "
                f"{info.members[:6]} instead"
            )
        if info.output_type == "loglikelihood_rolling":
            raise ConfigError(
                f"{key}: {name!r} is a perplexity (loglikelihood_rolling) task, which the "
                "sinkprune_dlm model does not support; evaluation.heldout measures held-out "
                "likelihood instead"
            )
        metric = settings.get("metric", "acc")
        base, _, filt = metric.partition(",")
        if base not in info.metrics:
            raise ConfigError(
                f"{key}.metric: {name!r} ({info.source}) reports {info.metrics}, not {base!r}"
            )
        if filt and filt not in info.filters:
            raise ConfigError(
                f"{key}.metric: {name!r} has filters {info.filters}, not {filt!r} "
                f"(write '{base},<filter>' or just '{base}')"
            )
        if name in LOCAL_TASKS and settings.get("num_fewshot", 0) > FEWSHOT_POOL:
            raise ConfigError(
                f"{key}.num_fewshot: {settings['num_fewshot']} exceeds the {FEWSHOT_POOL} "
                "few-shot items a local task has"
            )
        if info.output_type == "generate_until":
            gen = settings.get("gen_length", 256)
            block = settings.get("block_length", 32)
            steps = settings.get("steps", 256)
            if gen % block:
                raise ConfigError(
                    f"{key}.gen_length: {gen} is not a multiple of block_length {block} "
                    "(generation fills whole blocks)"
                )
            if steps % (gen // block):
                raise ConfigError(
                    f"{key}.steps: {steps} is not a multiple of the {gen // block} blocks "
                    f"(gen_length {gen} / block_length {block}); every block gets the same steps"
                )


# --------------------------------------------------------- other sources ---
def check_paper_names(config: dict, published_csv: str | Path) -> None:
    """`paper_name` must be a model of the published table, else `_vs_paper` tables vanish."""
    named = {n: m["paper_name"] for n, m in config["models"].items() if "paper_name" in m}
    if not named:
        return
    with open(published_csv, newline="", encoding="utf-8") as f:
        known = sorted({row["model"] for row in csv.DictReader(f)})
    for name, paper_name in named.items():
        if paper_name not in known:
            raise ConfigError(
                f"models.{name}.paper_name: {paper_name!r} is not a model in "
                f"{published_csv} (known: {known})"
            )


def check_corpus_file(config: dict, root: str | Path = ".") -> None:
    corpus = config.get("corpus", {})
    if corpus.get("kind") == "text_file" and corpus.get("path"):
        path = Path(root) / corpus["path"]
        if not path.is_file():
            raise ConfigError(f"corpus.path: {corpus['path']!r} is not a file (from {Path(root)})")


def checkpoint_max_length(model_dir: str | Path) -> tuple[int, str] | None:
    """(maximum length, field) from a checkpoint's config.json, None when it has neither field."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    for field in ("max_sequence_length", "max_position_embeddings"):
        if isinstance(cfg.get(field), int):
            return cfg[field], field
    return None


def check_hub_checkpoints(
    config: dict, hub_lengths: dict[str, int], root: str | Path = "."
) -> None:
    """A downloaded hub checkpoint must allow the declared arch.max_sequence_length."""
    for name, declared in hub_lengths.items():
        model_dir = Path(root) / "resources" / "models" / name
        if not (model_dir / "config.json").is_file():
            continue  # not downloaded yet: calibration checks its seqlen against the real file
        try:
            actual = checkpoint_max_length(model_dir)
        except (OSError, ValueError):
            continue  # a broken download: the job that loads it names the file
        if actual is not None and declared > actual[0]:
            raise ConfigError(
                f"models.{name}.arch.max_sequence_length: {declared} exceeds the checkpoint's "
                f"{actual[1]} = {actual[0]} in {model_dir / 'config.json'}"
            )


def check_length_at_run_time(model_dir: str | Path, length: int, key: str) -> None:
    """For hub models whose maximum only the downloaded config.json knows (calibration job;
    a tokenizer-only directory has no config.json and no maximum to check)."""
    if not (Path(model_dir) / "config.json").is_file():
        return
    actual = checkpoint_max_length(model_dir)
    if actual is not None and length > actual[0]:
        raise ConfigError(
            f"{key}: {length} exceeds {actual[1]} = {actual[0]} of "
            f"{Path(model_dir) / 'config.json'}"
        )


def check_run_settings(cores, jobs) -> None:
    """`--cores` / `--jobs` (or a profile's `cores:` / `jobs:`) must be at least 1: with 0
    Snakemake waits forever for a free slot."""
    for name, value in (("cores", cores), ("jobs", jobs)):
        if value is not None and isinstance(value, int) and value < 1:
            raise ConfigError(
                f"--{name} / profile key {name}: {value} is not allowed; give at least 1 "
                "(or 'all' for cores)"
            )


def exit_on_config_error(check, *args) -> None:
    """Run `check(*args)` at DAG build; a ConfigError ends Snakemake with its one line on stderr
    (no traceback, exit status 1), which is what a Snakefile does with a bad config."""
    import sys

    try:
        check(*args)
    except ConfigError as err:
        sys.exit(f"ConfigError: {err}")


def main(argv: list[str] | None = None) -> int:
    """`python -m sinkprune.config_checks FILE [FILE...]`: check config files as the workflow
    does (merged in order, like repeated --configfile), printing the first problem on one line.
    Snakemake reports a YAML syntax error in a --configfile without its position; this names
    file, line and column."""
    import argparse

    from snakemake.utils import update_config

    from .config import validate_config

    parser = argparse.ArgumentParser(prog="python -m sinkprune.config_checks")
    parser.add_argument("files", nargs="+", type=Path, help="config files, in --configfile order")
    args = parser.parse_args(argv)
    schema = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
    try:
        config: dict = {}
        for path in args.files:
            update_config(config, load_config_file(path))
        validate_config(config, schema)
    except ConfigError as err:
        print(f"ConfigError: {err}")
        return 1
    print(f"ok: {' + '.join(map(str, args.files))} is a valid sinkprune config")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
