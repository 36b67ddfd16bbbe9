"""Small builders shared by several test files."""

import torch

from sinkprune.models import LLaDAConfig, LLaDAModelLM

VOCAB, SEQLEN = 40, 16


def tiny_llada(seed: int = 0) -> LLaDAModelLM:
    """A random 2-layer LLaDA (d 32, 4 heads, MLP 64, vocab 40, mask id 39) in eval mode."""
    torch.manual_seed(seed)
    cfg = LLaDAConfig(
        d_model=32,
        n_layers=2,
        n_heads=4,
        mlp_hidden_size=64,
        vocab_size=VOCAB,
        max_sequence_length=SEQLEN,
        mask_token_id=VOCAB - 1,
    )
    return LLaDAModelLM(cfg).eval()


def write_task_json(results, model: str, variant: str, task: str, values, metric: str = "acc"):
    """A minimal evaluation result of one task as `sinkprune.evaluation` writes it: lm-eval's
    score and stderr, and the per-item values (`items`) the paired statistics read."""
    import json
    import math

    key = f"{metric},none"
    mean = sum(values) / len(values)
    payload = {
        "results": {task: {key: mean, key.replace(",", "_stderr,"): math.sqrt(mean * (1 - mean)
                                                                              / len(values))}},
        "items": {"metric": key, "ids": [f"{task}/{i}" for i in range(len(values))],
                  "values": list(values)},
    }  # fmt: skip
    path = results / model / "eval" / variant / f"{task}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


def write_heldout_json(results, model: str, variant: str, t: float, ce_sums, n_masked, nats):
    """A minimal heldout.json: masked CE at one t per window (sums over n_masked tokens) and
    ELBO nats per window (seqlen 8)."""
    import json
    import math

    windows = list(range(len(ce_sums)))
    payload = {
        "seqlen": 8,
        "windows": windows,
        "masked": [{"t": t, "ce_nats": sum(ce_sums) / sum(n_masked), "ce_nats_stderr": 0.01,
                    "ce_sum_per_window": list(ce_sums), "n_masked_per_window": list(n_masked)}],
        "next_token": None,
        "elbo": {"bits_per_token": sum(nats) / (8 * len(nats)) / math.log(2),
                 "bits_per_token_stderr": 0.01, "nats_per_window": list(nats)},
        "bits_per_token": sum(nats) / (8 * len(nats)) / math.log(2),
    }  # fmt: skip
    path = results / model / "eval" / variant / "heldout.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path
