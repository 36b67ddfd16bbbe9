"""Resource requests of the heavy rules, as documented functions of model size and job size.

Used by workflow/rules/common.smk (`resources:` of each rule) and unit-tested. Memory grows with
`attempt` so that a job killed for memory is retried with more (Snakemake `--retries`).
"""

from __future__ import annotations

BYTES_PER_PARAM = {"train": 16, "infer": 2}


def n_params(model_cfg: dict) -> float:
    """Parameter count: `n_params` from config, else computed from `arch` (llada layout)."""
    if "n_params" in model_cfg:
        return float(model_cfg["n_params"])
    a = model_cfg["arch"]
    d, n_layers = a["d_model"], a["n_layers"]
    heads = a["n_heads"]
    kv = a.get("n_kv_heads", heads)
    hd = d // heads
    mlp = a.get("mlp_hidden_size", 4 * d)
    vocab = model_cfg.get("vocab_size", 4096)
    per_block = d * hd * (heads + 2 * kv) + heads * hd * d + 3 * d * mlp + 2 * d
    return float(n_layers * per_block + 2 * vocab * d + d)


def is_embedded(model_cfg: dict) -> bool:
    return model_cfg["source"] == "train"


def mem_mb(stage: str, model_cfg: dict, attempt: int = 1, **job) -> int:
    """Memory request in MB: weights (+ stage overhead) with a 2 GB floor, times `attempt`."""
    p = n_params(model_cfg)
    if stage == "train":
        base = p * BYTES_PER_PARAM["train"] / 1e6 + 1500
    elif stage in {"prune", "attention_mass", "evaluate", "calibration"}:
        # fp32 CPU copy for pruning / bf16 on GPU for inference; host RAM holds one fp32 copy
        base = p * 4 / 1e6 + 2000
    else:
        base = 2000
    return int(max(2000, base) * attempt)


def runtime_min(stage: str, model_cfg: dict, attempt: int = 1, **job) -> int:
    """Wall-time request in minutes; embedded models get a small fixed budget."""
    if is_embedded(model_cfg):
        base = {"train": 30, "attention_mass": 20, "prune": 30, "evaluate": 30}.get(stage, 10)
    else:
        p_b = n_params(model_cfg) / 1e9
        base = {"train": 60, "attention_mass": 60, "prune": 240, "evaluate": 720}.get(stage, 30)
        base = int(base * max(1.0, p_b / 8))
    return int(base * attempt)


def gpus(stage: str, model_cfg: dict) -> int:
    """GPU count: 0 for embedded models (CPU-sized), 1 for hub models on GPU-heavy stages."""
    if is_embedded(model_cfg):
        return 0
    return 1 if stage in {"attention_mass", "prune", "evaluate", "calibration"} else 0
