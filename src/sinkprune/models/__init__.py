"""Model families (llada, dream), their registration with transformers' Auto classes, and loading.

Checkpoints load with sinkprune's own classes: `auto_map` / remote code in a config is ignored.
MMaDA-8B (`model_type: mmada`) is a LLaDA backbone with an extended vocabulary; it loads through
the llada family (its image tokenizer is a separate model and is not needed for text).
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoConfig, AutoModel

from .adapter import ModelAdapter, family_of, get_adapter
from .dream import DreamConfig, DreamModel
from .llada import LLaDAConfig, LLaDAModelLM

AutoConfig.register("llada", LLaDAConfig, exist_ok=True)
AutoConfig.register("Dream", DreamConfig, exist_ok=True)
AutoModel.register(LLaDAConfig, LLaDAModelLM, exist_ok=True)
AutoModel.register(DreamConfig, DreamModel, exist_ok=True)

MODEL_TYPES = {
    "llada": (LLaDAConfig, LLaDAModelLM),
    "mmada": (LLaDAConfig, LLaDAModelLM),
    "Dream": (DreamConfig, DreamModel),
    "dream": (DreamConfig, DreamModel),
}

__all__ = [
    "DreamConfig",
    "DreamModel",
    "LLaDAConfig",
    "LLaDAModelLM",
    "ModelAdapter",
    "family_of",
    "get_adapter",
    "load_model",
    "model_class",
]


def model_class(path: str | Path):
    """(config class, model class) for the checkpoint directory at `path`, from its model_type."""
    cfg_file = Path(path) / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{cfg_file}: no config.json; is {path} a model directory?")
    model_type = json.loads(cfg_file.read_text()).get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(
            f"{cfg_file}: model_type {model_type!r} is not a sinkprune family "
            f"(known: {sorted(MODEL_TYPES)})"
        )
    return MODEL_TYPES[model_type]


def load_model(path: str | Path, device: str | None = None, dtype=None):
    """Load a sinkprune/LLaDA/Dream checkpoint directory in eval mode, no remote code."""
    _, cls = model_class(path)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = cls.from_pretrained(str(path), **kwargs)
    if device is not None:
        model = model.to(device)
    return model.eval()
