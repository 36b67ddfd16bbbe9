"""Model families (llada, dream), their registration with transformers' Auto classes, and loading.

Checkpoints load with sinkprune's own classes: `auto_map` / remote code in a config is ignored.
MMaDA-8B (`model_type: mmada`) is a LLaDA backbone with an extended vocabulary; it loads through
the llada family (its image tokenizer is a separate model and is not needed for text).
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, AutoModel

from .adapter import ModelAdapter, family_of, get_adapter
from .common import ModelConfigError
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
    "ModelConfigError",
    "family_of",
    "get_adapter",
    "load_model",
    "model_class",
]


def model_class(path: str | Path):
    """(config class, model class) for the checkpoint directory at `path`, from its model_type."""
    from sinkprune.artifacts import ArtifactError, read_json

    cfg_file = Path(path) / "config.json"
    if not cfg_file.is_file():
        raise ArtifactError(f"{cfg_file}: no config.json; is {path} a model directory?")
    model_type = read_json(cfg_file).get("model_type")
    if model_type not in MODEL_TYPES:
        raise ModelConfigError(
            f"{cfg_file}: model_type {model_type!r} is not a sinkprune family "
            f"(known: {sorted(MODEL_TYPES)})"
        )
    return MODEL_TYPES[model_type]


def expected_tensors(config_cls, model_cls, path: str | Path) -> tuple[dict, set[str]]:
    """({parameter name: shape}, tied names) of the model that `path`'s config.json describes,
    built on the meta device (no memory, no initialisation). Unsupported fields raise here."""
    import torch

    try:
        config = config_cls.from_pretrained(str(path))
    except (ValueError, KeyError, TypeError) as err:  # transformers' own config validation
        if isinstance(err, ModelConfigError):
            raise
        raise ModelConfigError(f"{Path(path) / 'config.json'}: {err}") from None
    with torch.device("meta"):
        model = model_cls(config)
    shapes = {n: tuple(p.shape) for n, p in model.state_dict().items()}
    tied = set(model.get_expanded_tied_weights_keys(all_submodels=True))
    return shapes, tied


def load_model(path: str | Path, device: str | None = None, dtype=None, verify: bool = True):
    """Load a sinkprune/LLaDA/Dream checkpoint directory in eval mode, no remote code.

    With `verify` (always, in the workflow) the tensor files are first checked against the sha256
    their producer recorded, and the tensors against config.json: a missing, unexpected or
    misshapen tensor is an error, never a randomly initialised or dropped weight
    (`sinkprune.artifacts`). Config fields the model code does not implement are refused.
    """
    from sinkprune.artifacts import ArtifactError, check_tensors_match, verify_weights

    config_cls, cls = model_class(path)
    if verify:
        verify_weights(path)
        shapes, tied = expected_tensors(config_cls, cls, path)
        check_tensors_match(path, shapes, tied)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    model, info = cls.from_pretrained(str(path), output_loading_info=True, **kwargs)
    problems = {k: v for k, v in info.items() if k != "error_msgs" and v} | (
        {"error_msgs": info["error_msgs"]} if info.get("error_msgs") else {}
    )
    if problems:
        raise ArtifactError(f"{Path(path) / 'config.json'}: loading reported {problems}")
    for target, source in model.get_expanded_tied_weights_keys(all_submodels=True).items():
        if model.get_parameter(target) is not model.get_parameter(source):
            raise ArtifactError(
                f"{Path(path) / 'config.json'}: tie_word_embeddings is set but {target} in the "
                f"weights differs from {source}"
            )
    if device is not None:
        model = model.to(device)
    return model.eval()
