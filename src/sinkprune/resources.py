"""Resource requests of the rules, as documented functions of model size and job size.

Used by workflow/rules/common.smk (`resources:` of each rule, through `mem_mb_for`, `runtime_for`,
`gpu_for`, `gpu_model_for`) and unit-tested in tests/test_resources.py. All formulas are estimates for *requests*
(what a scheduler reserves), written so a reader can check them by hand:

* Model size N is `models.<m>.n_params` or, for embedded models, counted from `arch`.
* One forward of a T-token window costs F(T) = 2·N·T + 4·L·T²·d FLOPs (weights + attention;
  L layers, d hidden size). Without `arch` (hub models) L·d is taken as sqrt(N/12)·32, the
  L = 32, d = 4096 shape of an 8B model scaled with √N.
* Forwards per job (method.md): attention mass = samples × timesteps; sink norms (the statistics
  of `sink` / `sink_sp`, once per model) = samples × timesteps; `sink` / `sink_sp` prunes = 0
  (mask selection from the norms file); Wanda/SparseGPT/`sink_sgpt`/Wanda-sp = 2 per sample
  (sequential, block by block: each block runs every window for its statistics and again, pruned,
  for the next block's inputs; `sink_sgpt` reads ω̄ from the scores); `dwanda` = 2 per noised
  copy (`pruning.dwanda.mask_repeats` per sample, or one per grid level with `noise: grid`);
  `allocation: owl` adds one dense scoring pass (2 per input) to the sequential methods and
  nothing to `sink` / `magnitude` (docs/methods.md#layer-wise-allocation); evaluation
  (loglikelihood) = requests × rows per request (× 2 with classifier-free guidance), generation =
  requests × steps. Rows per request follow `evaluation.estimator` (`rows_per_request`): mc_num
  for the standard protocol; 2^ℓ − 1 when the task's typical answer length ℓ is enumerated
  (`exact_max_patterns`); with sequential stopping the cap for runtime *requests* (a job must
  not outlive its wall-time) and STOP_SHARE × cap for the GPU-hour *estimate*.
* GPU time = FLOPs / GPU_FLOPS, with GPU_FLOPS = 100 TFLOP/s: bf16 on an A100/H100 at the low
  utilisation that small-batch, hook-heavy passes reach. Requests add a fixed model load time and
  a 1.5× safety margin.
* Host memory (`mem_mb`): the bf16 weights (2 bytes/param) plus the stage's largest host-side
  array (e.g. the attention-mass parquet: samples × timesteps × L × T rows of ~48 bytes, held
  twice while written), with a 2 GB floor. Memory and runtime scale linearly with `attempt`
  so a job killed for memory or time is resubmitted larger (`--retries`).

Every function takes the stage name and the model's config block; job dimensions come as keyword
arguments (see `job_size`, which derives them from the whole config and the job's wildcards).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

GPU_FLOPS = 100e12  # sustained bf16 FLOP/s assumed for one GPU (see module docstring)
SAFETY = 1.5  # runtime request = estimate × SAFETY + load time
LOAD_MIN = 10  # minutes to load an 8B checkpoint and move it to the GPU
FLOOR_MB = 2000
SOLVE_S_PER_COLUMN = 2e-4  # SparseGPT: seconds per weight column of the sequential solve
TRAIN_MARGIN_MIN = 10  # embedded training: runtime request = train.minutes + this, at least 30
TRAIN_THREADS_MIN_WIDTH = 128  # embedded models this wide train on 2 threads (see threads())
MASS_ROW_BYTES = 48  # one attention-mass parquet row: 8 columns, int/float, plus arrow overhead

#: Every stage name the rules pass to mem_mb_for/runtime_for/gpu_for, with its own formula.
STAGES = frozenset(
    {"train", "download_model", "calibration", "attention_mass", "sink_masks", "sink_stats"}
    | {"sink_norms", "prune", "evaluate", "heldout", "perplexity"}
)
#: Stages that run a model forward and want a GPU for hub-sized models.
GPU_STAGES = frozenset(
    {"attention_mass", "sink_norms", "prune", "evaluate", "heldout", "perplexity"}
)
#: the release's perplexity text: tokens per test-split record (WikiText-2 test: ~290k tokens in
#: 4 358 rows with a LLaMA-class tokenizer) and the whole split's tokens (evaluation.ppl.rows null)
PPL_TOKENS_PER_RECORD = 70
PPL_ALL_TOKENS = 300_000

#: Approximate size of each lm-eval task: (documents, requests per document, tokens per request
#: at 0-shot, extra tokens per few-shot example). Public split sizes; token counts are estimates
#: of the mean context + continuation length with a LLaMA-class tokenizer.
TASK_SHAPE: dict[str, tuple[int, float, int, int]] = {
    "arc_challenge": (1172, 4, 60, 60),
    "arc_easy": (2376, 4, 55, 55),
    "hellaswag": (10042, 4, 120, 120),
    "piqa": (1838, 2, 50, 50),
    "winogrande": (1267, 2, 35, 35),
    "mmlu": (14042, 4, 110, 110),
    "gpqa_main_n_shot": (448, 4, 250, 250),
    "truthfulqa_mc2": (817, 7.5, 80, 0),
    "race": (1045, 4, 450, 450),
    "gsm8k": (1319, 1, 120, 130),
}
DEFAULT_TASK_SHAPE = (1000, 4, 100, 100)

#: Typical answer-choice length in tokens (LLaMA-class tokenizer, with the target delimiter):
#: whether `evaluation.estimator.exact_max_patterns` enumerates a task's choices. Estimates from
#: the tasks' choice formats: MMLU " A", GPQA " (A)", WinoGrande's partial sentence, etc.
CONTINUATION_TOKENS: dict[str, int] = {
    "mmlu": 1,
    "gpqa_main_n_shot": 3,
    "arc_challenge": 6,
    "arc_easy": 6,
    "winogrande": 7,
    "race": 9,
    "truthfulqa_mc2": 12,
    "piqa": 22,
    "hellaswag": 25,
}
DEFAULT_CONTINUATION_TOKENS = 10
#: Mean rows per Monte-Carlo choice with sequential stopping, as a share of the cap: measured by
#: `make bench` (sinkprune.bench.agreement, the embedded default's setting, both bench models).
STOP_SHARE = 0.55


# ------------------------------------------------------------------ model ---
def n_params(model_cfg: Mapping) -> float:
    """Parameter count: `n_params` from config, else counted from `arch` (llada layout; a dream
    model's q/k/v biases are left out)."""
    if "n_params" in model_cfg:
        return float(model_cfg["n_params"])
    if "arch" not in model_cfg:
        raise ValueError("model config needs `n_params` or `arch` to size its jobs")
    a = model_cfg["arch"]
    d, n_layers = a["d_model"], a["n_layers"]
    heads = a["n_heads"]
    kv = a.get("n_kv_heads", heads)
    hd = d // heads
    mlp = a.get("mlp_hidden_size", 4 * d)
    vocab = model_cfg.get("vocab_size", 4096)
    per_block = d * hd * (heads + 2 * kv) + heads * hd * d + 3 * d * mlp + 2 * d
    return float(n_layers * per_block + 2 * vocab * d + d)


def shape(model_cfg: Mapping) -> tuple[int, int]:
    """(L, d): from `arch`, else the L = 32, d = 4096 of an 8B model with d scaled by √(N/8e9)."""
    if "arch" in model_cfg:
        return int(model_cfg["arch"]["n_layers"]), int(model_cfg["arch"]["d_model"])
    return 32, int(4096 * math.sqrt(n_params(model_cfg) / 8e9))


def layers_x_width(model_cfg: Mapping) -> float:
    """L·d, the factor of the attention term of a forward."""
    n_layers, d = shape(model_cfg)
    return float(n_layers * d)


def forward_flops(model_cfg: Mapping, seqlen: int) -> float:
    """FLOPs of one forward over `seqlen` tokens: 2·N·T + 4·L·d·T² (QKᵀ and AV)."""
    return 2 * n_params(model_cfg) * seqlen + 4 * layers_x_width(model_cfg) * seqlen**2


def is_embedded(model_cfg: Mapping) -> bool:
    return model_cfg["source"] == "train"


# ------------------------------------------------------------------- jobs ---
def job_size(stage: str, config: Mapping, wildcards: Mapping | None = None) -> dict:
    """Job dimensions of `stage` from the validated config and the job's wildcards.

    Keys: nsamples, seqlen, timesteps (always); method (from the variant wildcard); for evaluate
    either task + task_cfg (a task wildcard) or tasks (every task: one job runs them all) and
    heldout = (n_sequences, seqlen, len(t_grid)); for perplexity (and evaluate without a task)
    ppl = (chunks, mc_num, prompt_length + chunk_size), chunks estimated from evaluation.ppl.rows.
    """
    wildcards = wildcards or {}
    cal = config.get("calibration", {})
    diff = config.get("diffusion", {})
    steps, interval = diff.get("steps", 50), diff.get("sample_interval", 5)
    out = {
        "nsamples": cal.get("nsamples", 128),
        "seqlen": cal.get("seqlen", 4096),
        "timesteps": len(range(interval, steps + 1, interval)),
    }
    variant = _get(wildcards, "variant")
    if variant:
        from sinkprune.config import parse_variant

        v = parse_variant(variant)
        out.update(method=v.method, noise=v.noise, allocation=v.allocation)
        out["mask_repeats"] = config.get("pruning", {}).get("dwanda", {}).get("mask_repeats", 8)
    tasks = config.get("evaluation", {}).get("tasks", {})
    task = _get(wildcards, "task")
    if task:
        out["task"] = task
        out["task_cfg"] = task_settings(config, task)
    elif stage == "evaluate":  # one job runs every task and the held-out likelihood
        out["tasks"] = {name: task_settings(config, name) for name in tasks}
    if stage == "heldout" or (stage == "evaluate" and not task):
        h = config.get("evaluation", {}).get("heldout", {})
        out["heldout"] = (
            h.get("n_sequences", 64),
            h.get("seqlen", 64),
            len(h.get("t_grid", [0.15, 0.5, 0.85])),
        )
    if stage == "perplexity" or (stage == "evaluate" and not task):
        p = config.get("evaluation", {}).get("ppl", {})
        rows = p.get("rows", 128)
        tokens = PPL_ALL_TOKENS if rows is None else rows * PPL_TOKENS_PER_RECORD
        out["ppl"] = (
            max(1, tokens // p.get("stride", 64)),
            p.get("mc_num", 8),
            p.get("prompt_length", 960) + p.get("chunk_size", 64),
        )
    return out


def task_settings(config: Mapping, task: str) -> dict:
    """`evaluation.tasks.<task>` with its estimator options (evaluation.estimator merged)."""
    from sinkprune.evaluation.estimator import task_estimator

    tasks = config.get("evaluation", {}).get("tasks", {})
    return dict(tasks.get(task, {})) | {"estimator": task_estimator(config, task)}


def _get(wildcards, key):
    try:
        return wildcards[key]
    except (KeyError, IndexError, AttributeError, TypeError):
        return getattr(wildcards, key, None)


def forwards(stage: str, **job) -> float:
    """Number of full-window forward passes the job runs (module docstring)."""
    n, k = job.get("nsamples", 128), job.get("timesteps", 10)
    if stage in {"attention_mass", "sink_norms"}:
        return n * k  # one dense pass per (sample, t)
    if stage == "prune":
        method = job.get("method", "wanda")
        if method in {"sink", "sink_sp"}:
            return 0  # statistics from rule sink_norms: a mask selection, no forward
        if method == "magnitude" or method == "dense":
            return 0
        # wanda, sparsegpt, sink_sgpt (ω̄ read from the scores), wanda_sp: sequential on clean
        # windows; every block runs each window twice (statistics, then the pruned outputs)
        inputs = n
        if method == "dwanda":  # sequential on the noised copies
            inputs = n * (k if job.get("noise") == "grid" else job.get("mask_repeats", 8))
        passes = 2 if job.get("allocation") == "owl" else 1  # OWL's dense scoring pass first
        return 2 * inputs * passes
    return 0


def rows_per_request(task: str, task_cfg: Mapping, expected: bool = False) -> float:
    """Masked rows one log-likelihood request of `task` costs under its estimator options
    (`task_cfg["estimator"]`, absent = standard): 2^ℓ − 1 if its typical answer length ℓ is
    enumerated, else mc_num, or with stopping the cap (`expected`: STOP_SHARE × cap)."""
    from sinkprune.evaluation.estimator import Estimator

    est = Estimator.from_dict(task_cfg.get("estimator"))
    mc_num = task_cfg.get("mc_num", 128)
    length = CONTINUATION_TOKENS.get(task, DEFAULT_CONTINUATION_TOKENS)
    if est.exact_for(length):
        return float(2**length - 1)
    rows = est.max_rows(mc_num)
    return rows * STOP_SHARE if est.stopping and expected else float(rows)


def eval_cost(model_cfg: Mapping, task: str, task_cfg: Mapping, expected: bool = False) -> float:
    """FLOPs of one lm-eval task: requests × rows per request (× 2 with cfg) loglikelihood
    forwards, or requests × steps forwards of context + gen_length tokens for generation (gsm8k).
    `expected`: the mean cost under sequential stopping instead of its cap (rows_per_request)."""
    docs, per_doc, tokens, shot_tokens = TASK_SHAPE.get(task, DEFAULT_TASK_SHAPE)
    if task_cfg.get("limit"):
        docs = min(docs, task_cfg["limit"])
    length = tokens + task_cfg.get("num_fewshot", 0) * shot_tokens
    if task == "gsm8k" or task_cfg.get("metric", "").startswith("exact_match"):
        gen = task_cfg.get("gen_length", 256)
        return docs * task_cfg.get("steps", gen) * forward_flops(model_cfg, length + gen)
    guidance = 2 if task_cfg.get("cfg", 0) > 0 else 1
    n_fwd = docs * per_doc * rows_per_request(task, task_cfg, expected) * guidance
    return n_fwd * forward_flops(model_cfg, length)


def gpu_hours(stage: str, model_cfg: Mapping, expected: bool = False, **job) -> float:
    """Estimated GPU hours of one job of `stage` (0 for stages without model forwards); for
    evaluation with sequential stopping the cap's cost, or with `expected` the mean's."""
    if stage == "evaluate" and "task" in job:
        flops = eval_cost(model_cfg, job["task"], job.get("task_cfg", {}), expected)
    elif stage == "evaluate":
        flops = sum(eval_cost(model_cfg, t, c, expected) for t, c in job.get("tasks", {}).items())
        hours = flops / GPU_FLOPS / 3600 + gpu_hours("heldout", model_cfg, **job)
        return hours + gpu_hours("perplexity", model_cfg, **job)
    elif stage == "perplexity":  # chunks × draws forwards of prompt + chunk tokens
        chunks, mc_num, length = job.get("ppl", (140, 8, 1024))
        flops = chunks * mc_num * forward_flops(model_cfg, length)
    elif stage == "heldout":
        n_seq, seqlen, n_t = job.get("heldout", (64, 64, 3))
        flops = n_seq * n_t * forward_flops(model_cfg, seqlen)
    else:
        flops = forwards(stage, **job) * forward_flops(model_cfg, job.get("seqlen", 4096))
    seconds = flops / GPU_FLOPS
    if stage == "prune" and job.get("method") in {"sparsegpt", "sink_sgpt"}:
        # the OBS solve walks the input columns one by one (small kernels, latency-bound):
        # 7 linears per block with d_in ≈ d, except ff_out (d_in = 3d), i.e. ~9·d columns per block
        n_layers, d = shape(model_cfg)
        seconds += n_layers * 9 * d * SOLVE_S_PER_COLUMN
    return seconds / 3600


# -------------------------------------------------------------- requests ---
def mem_mb(stage: str, model_cfg: Mapping, attempt: int = 1, **job) -> int:
    """Host memory request in MB (module docstring), times `attempt`."""
    p = n_params(model_cfg)
    weights = p * 2 / 1e6  # bf16 copy on the host
    n, k, t = job.get("nsamples", 128), job.get("timesteps", 10), job.get("seqlen", 4096)
    layers = shape(model_cfg)[0]
    mass_mb = n * k * layers * t * MASS_ROW_BYTES / 1e6
    if stage == "train":
        base = p * 16 / 1e6 + 1500  # fp32 weights + grads + 2 Adam moments
    elif stage == "attention_mass":
        base = weights + 2 * mass_mb + 2000
    elif stage == "sink_norms":
        # weights + the noised token ids and ω of every (sample, t) + the scores parquet read
        base = weights + n * k * t * 12 / 1e6 + n * k * t * 40 / 1e6 + 4000
    elif stage in {"sink_masks", "sink_stats"}:
        base = 3 * mass_mb + 1000  # parquet + a pandas copy + group-by buffers
    elif stage == "prune":
        # fp32 working copy for the solver/structured surgery + calibration windows
        base = p * 4 / 1e6 + n * t * 8 / 1e6 + 4000
    elif stage in {"evaluate", "heldout", "perplexity"}:
        base = weights + 4000  # weights + tokenizer + datasets
    elif stage == "calibration":
        base = 4000  # tokenizer + the tokenised train split; no weights
    elif stage == "download_model":
        base = 4000
    else:
        base = FLOOR_MB
    if is_embedded(model_cfg):
        base = min(base, 4000)  # CPU-sized: a few MB of weights
    return int(math.ceil(max(FLOOR_MB, base) * attempt))


def runtime_min(stage: str, model_cfg: Mapping, attempt: int = 1, **job) -> int:
    """Wall-time request in minutes: estimate × SAFETY + LOAD_MIN for hub models, a small fixed
    budget for embedded (CPU-sized) models (training: at least its `train.minutes` cap +
    TRAIN_MARGIN_MIN); times `attempt`."""
    if is_embedded(model_cfg):
        base = {"train": 30, "attention_mass": 20, "sink_norms": 20, "prune": 30, "evaluate": 30}
        base = base.get(stage, 10)
        if stage == "train":  # never below the run's own wall-clock cap (+ data, eval, saving)
            cap = model_cfg.get("train", {}).get("minutes", 4.0)
            base = max(base, math.ceil(cap) + TRAIN_MARGIN_MIN)
        return int(base * attempt)
    if stage == "download_model":
        base = 60.0
    elif stage in GPU_STAGES:
        base = gpu_hours(stage, model_cfg, **job) * 60 * SAFETY + LOAD_MIN
    else:
        base = 30.0 + mem_mb(stage, model_cfg, 1, **job) / 1000  # I/O-bound: ~1 min per GB
    return int(math.ceil(base * attempt))


def gpus(stage: str, model_cfg: Mapping) -> int:
    """GPU count: 1 for hub models on stages that run model forwards, else 0 (embedded models
    are CPU-sized; tokenisation, statistics, tables and figures never need one)."""
    if is_embedded(model_cfg):
        return 0
    return 1 if stage in GPU_STAGES else 0


def gpu_model(stage: str, model_cfg: Mapping, requested: str | None) -> str | None:
    """The `gpu_model` resource of a job: `requested` (SINKPRUNE_GPU_MODEL) where the job asks for
    a GPU, else None (no such resource).

    snakemake-executor-plugin-slurm turns `gpu_model` into `--gpus=<model>:<gpu>` whatever `gpu`
    is; for gpu = 0 sbatch accepts `--gpus=a100:0` but the job's `srun` step then fails with
    "Invalid generic resource (gres) specification" (measured, SLURM 22.05, plugin 2.8.0). A
    profile cannot make one resource depend on another, so the rule sets it per job. None or ""
    for `requested` also gives None: the plugin then asks for any GPU (`--gpus=1`).
    """
    if gpus(stage, model_cfg) == 0 or not requested:
        return None
    return requested


def threads(stage: str, model_cfg: Mapping | None = None) -> int:
    """CPU threads a job of `stage` asks for: data loading and host-side work for GPU stages.

    Embedded (trained-here) models get 1 thread, except training a model of width
    >= TRAIN_THREADS_MIN_WIDTH, which gets 2: there intra-op parallelism pays (d_model 128:
    1.6x tokens/s on a quiet 2-core machine, docs/decisions.md "Embedded training"), and the
    training jobs sit on the critical path, so on 2 cores they run one after the other with both
    cores each. Smaller matrices do not pay for the second thread (micro config: 0.9 s on 1
    thread, 6.2 s on 2 on a busy machine), so their jobs run side by side.
    """
    if model_cfg is not None and is_embedded(model_cfg):
        wide = model_cfg.get("arch", {}).get("d_model", 0) >= TRAIN_THREADS_MIN_WIDTH
        return 2 if stage == "train" and wide else 1
    return {
        "train": 2,
        "attention_mass": 4,
        "sink_norms": 4,
        "prune": 4,
        "evaluate": 4,
        "heldout": 4,
        "perplexity": 4,
    }.get(stage, 1)


# ------------------------------------------------------------------ totals ---
def paper_gpu_hours(config: Mapping) -> list[dict]:
    """One row per (model, stage) with the job count and estimated GPU hours of the whole grid."""
    from sinkprune.config import variants

    rows = []
    tasks = config.get("evaluation", {}).get("tasks", {})
    for model, mcfg in config["models"].items():
        if gpus("attention_mass", mcfg) == 0:
            continue
        job = job_size("attention_mass", config)
        rows.append(_row(model, "attention_mass", 1, gpu_hours("attention_mass", mcfg, **job)))
        vs = variants(config, model)
        if any(v.method in {"sink", "sink_sp"} for v in vs):
            rows.append(_row(model, "sink_norms", 1, gpu_hours("sink_norms", mcfg, **job)))
        if model in config.get("pruning", {}).get("models", []):
            by_method: dict[str, list[float]] = {}
            for v in vs[1:]:
                vjob = job_size("prune", config, {"variant": v.name})
                h = gpu_hours("prune", mcfg, **vjob)
                by_method.setdefault(v.label, []).append(h)
            for method, hours in by_method.items():
                rows.append(_row(model, f"prune ({method})", len(hours), sum(hours)))
        if model in config.get("evaluation", {}).get("models", []):
            for task in tasks:
                tcfg = task_settings(config, task)
                h = gpu_hours("evaluate", mcfg, expected=True, task=task, task_cfg=tcfg)
                rows.append(_row(model, f"evaluate ({task})", len(vs), h * len(vs)))
            hj = job_size("heldout", config)
            h = gpu_hours("heldout", mcfg, **hj)
            rows.append(_row(model, "evaluate (heldout)", len(vs), h * len(vs)))
            h = gpu_hours("perplexity", mcfg, **job_size("perplexity", config))
            rows.append(_row(model, "evaluate (ppl)", len(vs), h * len(vs)))
    return rows


def _row(model: str, stage: str, jobs: int, hours: float) -> dict:
    return {"model": model, "stage": stage, "jobs": jobs, "gpu_hours": hours}


def merge(base: dict, update: Mapping) -> dict:
    """Deep merge of a second config file, as Snakemake merges `--configfile A B`."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> None:
    """`python -m sinkprune.resources CONFIG.yaml [MORE.yaml ...]`: print the GPU-hour table as
    Markdown; later files are deep-merged into the first (e.g. config/fast_estimator.yaml)."""
    import sys

    import yaml

    argv = sys.argv[1:] if argv is None else argv
    config: dict = {}
    for path in argv:
        config = merge(config, yaml.safe_load(open(path)))
    rows = paper_gpu_hours(config)
    print("| model | stage | jobs | GPU h |\n|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['stage']} | {r['jobs']} | {r['gpu_hours']:.1f} |")
    print(
        f"| **total** | | {sum(r['jobs'] for r in rows)} | {sum(r['gpu_hours'] for r in rows):.0f} |"
    )


if __name__ == "__main__":
    main()
