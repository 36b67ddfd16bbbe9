"""The ablation ladders Wanda → sink-aware Wanda and SparseGPT → sink-aware SparseGPT (issue #18,
docs/methods.md#ablation-ladder): what each rung is, and the table of each rung's change against
the rung below with paired 95% CIs (rule `sink_ladder`, `results/tables/ablation/sink_ladder.*`).

Sink-aware Wanda differs from Wanda in four ways: noised inputs, on the fixed t grid of the
calibration stage, from one dense pass, with the summed unsquared norm, and ω-weighted rows. The
ladder changes one at a time (config.WANDA_LADDER); `rung_properties` states each rung's values
and the table names the one that changes.
"""

from __future__ import annotations

from collections.abc import Mapping

#: what a rung's property values mean, in the order the Wanda ladder changes them
PROPERTIES = {
    "inputs": {
        "clean": "clean windows",
        "random t": "noised copies, t ~ U[t_min, t_max] per copy",
        "t grid": "noised x_t of the diffusion grid (the sink stage's inputs)",
    },
    "pass": {
        "sequential": "sequential (block i sees pruned blocks < i)",
        "one-shot": "one dense pass (statistics of the unpruned model)",
    },
    "statistic": {
        "rms": "sqrt(mean_x ‖X_c‖²) (Wanda)",
        "summed": "Σ_x ‖X_c‖ (sink-aware Wanda)",
        "hessian": "H = (2/N) Σ XᵀX (SparseGPT)",
    },
    "weighting": {"none": "ω ≡ 1", "omega": "rows × ω (per x_t)", "mean omega": "rows × ω̄"},
}


def rung_properties(method: str, options: Mapping[str, str]) -> dict[str, str]:
    """The four properties of a ladder rung (method + variant options)."""
    if method in {"sparsegpt", "sink_sgpt"}:
        weighted = method == "sink_sgpt" and options.get("weighting", "sink") != "none"
        return {
            "inputs": "clean",
            "pass": "sequential",
            "statistic": "hessian",
            "weighting": "mean omega" if weighted else "none",
        }
    if method == "wanda":
        return {"inputs": "clean", "pass": "sequential", "statistic": "rms", "weighting": "none"}
    if method == "dwanda":
        inputs = "t grid" if options.get("noise", "random") == "grid" else "random t"
        return {"inputs": inputs, "pass": "sequential", "statistic": "rms", "weighting": "none"}
    if method == "sink":
        return {
            "inputs": "t grid",
            "pass": "one-shot",
            "statistic": options.get("norm", "summed"),
            "weighting": "none" if options.get("weighting", "sink") == "none" else "omega",
        }
    raise ValueError(f"{method!r} is not a rung of the ablation ladders")


def change(below: Mapping[str, str], above: Mapping[str, str]) -> str:
    """'property: from → to' for each property that differs between two rungs."""
    return "; ".join(
        f"{key}: {below[key]} → {above[key]}" for key in PROPERTIES if below[key] != above[key]
    )
