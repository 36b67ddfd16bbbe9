"""Training the embedded tiny models (rule `train_model`, config/README.md#models).

`kind: dlm` is a LLaDA-style masked-diffusion LM: per sequence t ~ U(0,1), every token is replaced
by the tokenizer's `<|mdm_mask|>` with probability p = (1-eps)·t + eps (method.md §2) and the loss is
the cross-entropy on masked tokens weighted 1/p, summed and divided by B·T as in LLaDA's
pre-training code. `kind: ar` is the same network with `causal=True` and next-token CE.
`family: dream` builds the Qwen2-style Dream network (GQA, q/k/v biases) and trains it with
Dream's forward process (`dream_loss`: shifted logits, the first token never masked).

Data are random windows of `seq_len` tokens from the tokenised train split. AdamW, linear warm-up,
cosine decay to `min_lr_ratio`·lr at `max_steps`, gradient clipping; training stops at `max_steps`
or after `minutes` of wall clock, whichever comes first (the schedule is in steps, so a run stopped
by `max_steps` is reproducible from `seed`). Held-out metrics use fixed, seeded masks.

A resumable checkpoint (`.{name}.resume.safetensors` beside the output directory, which Snakemake
deletes when a job fails; tensors plus JSON metadata, nothing executable) is written every
CHECKPOINT_SECONDS; a killed run restarted with the same settings, tokenizer and corpus continues
from it, and a finished run deletes it. Final files are
staged and renamed into place, `train_metrics.json` last, so a killed run never leaves a
complete-looking model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from .artifacts import checkpoint_digests
from .models import DreamConfig, DreamModel, LLaDAConfig, LLaDAModelLM
from .tokenizer import FILES as TOKENIZER_FILES
from .tokenizer import load_tokenizer, mask_token_id

log = logging.getLogger(__name__)

EPS = 1e-3  # mask-probability floor, method.md §2
EVAL_T = (0.15, 0.5, 0.85)  # held-out masked-CE noise levels (quality bar)
EVAL_WINDOWS = 256  # held-out windows for the final metrics
CURVE_WINDOWS = 32  # held-out windows for the loss curve
CHECKPOINT_SECONDS = 60.0
RESUME_FORMAT = "sinkprune-train-resume-1"
LOSS_WEIGHTINGS = ("elbo", "masked_mean")  # `train.loss_weighting`, see mdm_loss

# Quality bar of the embedded models (issue #12), computed from the held-out metrics.
BAR_DLM_T015_VS_T085 = 0.10  # CE(t=0.15) at least 10% below CE(t=0.85): the model uses context
BAR_DLM_T05_VS_UNIGRAM = 1.2  # CE(t=0.5) at least 1.2 nats below the unigram entropy
BAR_AR_VS_UNIGRAM = 1.5  # next-token CE at least 1.5 nats below the unigram entropy


@dataclass(frozen=True)
class TrainSpec:
    """`models.<name>.train` of the config (defaults as in the schema)."""

    minutes: float = 4.0
    max_steps: int = 20000
    batch_size: int = 32
    seq_len: int = 64
    lr: float = 5e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    eval_every: int = 200
    loss_weighting: str = "elbo"

    @classmethod
    def from_config(cls, train: dict) -> TrainSpec:
        known = set(cls.__dataclass_fields__)
        unknown = set(train) - known
        if unknown:
            raise ValueError(f"models.<name>.train: unknown keys {sorted(unknown)}")
        spec = cls(**train)
        if spec.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(
                f"models.<name>.train.loss_weighting: expected one of {LOSS_WEIGHTINGS}, "
                f"got {spec.loss_weighting!r}"
            )
        return spec


# ------------------------------------------------------------------- data ---
def encode_file(path: str | Path, tokenizer, lines_per_chunk: int = 200) -> torch.Tensor:
    """Token ids (1-D int64) of a text file, encoded in chunks of whole lines (fast, same ids)."""
    text = Path(path).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    chunks = [
        "".join(lines[i : i + lines_per_chunk]) for i in range(0, len(lines), lines_per_chunk)
    ]
    encodings = tokenizer.backend_tokenizer.encode_batch(chunks, add_special_tokens=False)
    ids = [i for e in encodings for i in e.ids]
    if not ids:
        raise ValueError(f"{path}: no tokens (empty corpus split?)")
    return torch.tensor(ids, dtype=torch.long)


def random_windows(
    tokens: torch.Tensor, batch_size: int, seq_len: int, gen: torch.Generator
) -> torch.Tensor:
    """(batch_size, seq_len) windows starting at uniformly random offsets."""
    starts = torch.randint(0, len(tokens) - seq_len + 1, (batch_size,), generator=gen)
    return torch.stack([tokens[s : s + seq_len] for s in starts.tolist()])


def heldout_windows(tokens: torch.Tensor, seq_len: int, n: int) -> torch.Tensor:
    """Up to n non-overlapping windows spread evenly over the held-out stream (deterministic)."""
    available = len(tokens) // seq_len
    if available == 0:
        raise ValueError(f"held-out split has {len(tokens)} tokens, fewer than seq_len {seq_len}")
    idx = torch.linspace(0, available - 1, min(n, available)).round().long().unique()
    return torch.stack([tokens[i * seq_len : (i + 1) * seq_len] for i in idx.tolist()])


def mask_prob(t: torch.Tensor | float, eps: float = EPS):
    """p(t) = (1 - eps)·t + eps (method.md §2)."""
    return (1 - eps) * t + eps


# ------------------------------------------------------------------ model ---
def build_model(
    arch: dict, kind: str, vocab_size: int, mask_id: int, family: str = "llada"
) -> LLaDAModelLM | DreamModel:
    """A model of `family` from `models.<name>.arch`; `kind: ar` makes it causal."""
    if kind not in {"dlm", "ar"}:
        raise ValueError(f"models.<name>.kind: expected 'dlm' or 'ar', got {kind!r}")
    if family not in {"llada", "dream"}:
        raise ValueError(f"models.<name>.family: expected 'llada' or 'dream', got {family!r}")
    common = {"vocab_size": vocab_size, "mask_token_id": mask_id, "causal": kind == "ar"}
    values = {**_arch_with_defaults(arch), "rope_theta": arch.get("rope_theta", 10000.0)}
    if family == "dream":
        names = DREAM_ARCH_NAMES
        return DreamModel(DreamConfig(**{names.get(k, k): v for k, v in values.items()}, **common))
    return LLaDAModelLM(LLaDAConfig(**values, **common))


#: family-neutral `arch` key -> DreamConfig (Qwen2-style: GQA, q/k/v biases, untied head) field
DREAM_ARCH_NAMES = {
    "d_model": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "n_kv_heads": "num_key_value_heads",
    "mlp_hidden_size": "intermediate_size",
    "max_sequence_length": "max_position_embeddings",
}


def _arch_with_defaults(arch: dict) -> dict:
    """The shape keys of `models.<name>.arch` with their defaults filled in."""
    return {
        "d_model": arch["d_model"],
        "n_layers": arch["n_layers"],
        "n_heads": arch["n_heads"],
        "n_kv_heads": arch.get("n_kv_heads", arch["n_heads"]),
        "mlp_hidden_size": arch.get("mlp_hidden_size", 4 * arch["d_model"]),
        "max_sequence_length": arch.get("max_sequence_length", 64),
    }


def max_length(model) -> int:
    c = model.config
    return int(getattr(c, "max_sequence_length", None) or c.max_position_embeddings)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------- losses ---
def mdm_loss(
    model,
    x: torch.Tensor,
    mask_id: int,
    gen: torch.Generator,
    eps: float = EPS,
    weighting: str = "elbo",
) -> torch.Tensor:
    """Masked-diffusion loss at t ~ U(0,1) per sequence (method.md §2 masking).

    `elbo` (LLaDA's pre-training loss): Σ_masked CE/p over B·T tokens, an unbiased estimate of the
    ELBO per token, E_t[CE_t] with CE_t the mean CE of a masked token at level t. `masked_mean`:
    each window's mean CE over its masked tokens, averaged over windows: the same E_t[CE_t] (a
    ratio estimate of CE_t, consistent but not unbiased) without the 1/p factor that makes
    low-t windows dominate the variance. Windows with no masked token are left out of the mean.

    The batch's t are stratified (t_i = (u + i/B) mod 1, MDLM's low-discrepancy sampler): each is
    still U(0,1), but the batch covers the noise levels evenly, which lowers the loss variance.
    """
    B, T = x.shape
    t = (torch.rand(1, generator=gen) + torch.arange(B)[:, None] / B) % 1.0
    p = mask_prob(t, eps).expand(B, T)
    masked = torch.rand(B, T, generator=gen) < p
    logits = model(torch.where(masked, mask_id, x)).logits
    ce = F.cross_entropy(logits[masked], x[masked], reduction="none")
    return _reduce_masked_ce(ce, masked, p, weighting)


def _reduce_masked_ce(
    ce: torch.Tensor, masked: torch.Tensor, p: torch.Tensor, weighting: str
) -> torch.Tensor:
    """The loss from the CE of the scored tokens (`masked`, a (B, n) bool grid of n scorable
    positions per window, in row-major order like `ce`) and their mask probabilities `p` (B, n):
    `elbo` Σ CE/p over B·n, `masked_mean` the mean over windows of their mean CE (see mdm_loss)."""
    B, n = masked.shape
    if weighting == "elbo":
        return (ce / p[masked]).sum() / (B * n)
    if weighting == "masked_mean":
        rows = masked.nonzero()[:, 0]
        per_window = torch.zeros(B, dtype=ce.dtype, device=ce.device).index_add_(0, rows, ce)
        counts = masked.sum(1)
        if not counts.any():  # nothing masked anywhere (tiny B·T at tiny t): no signal
            return ce.sum()
        return (per_window[counts > 0] / counts[counts > 0]).mean()
    raise ValueError(f"loss_weighting: expected one of {LOSS_WEIGHTINGS}, got {weighting!r}")


def dream_loss(
    model,
    x: torch.Tensor,
    mask_id: int,
    gen: torch.Generator,
    eps: float = EPS,
    weighting: str = "elbo",
) -> torch.Tensor:
    """Dream's masked-diffusion loss: Σ_masked CE/p over the B·(T-1) maskable tokens (`elbo`), or
    the mean over windows of their masked tokens' mean CE (`masked_mean`, see mdm_loss).

    The forward process of `mdm_loss` (stratified t, p = (1-eps)·t + eps, the same draws) with
    Dream's shifted logits (method.md §1): the logit at j-1 predicts token j, so the first token,
    which no logit predicts, is never masked and never scored; the last one is (docs/decisions.md,
    "Embedded Dream-family model").
    """
    B, T = x.shape
    t = (torch.rand(1, generator=gen) + torch.arange(B)[:, None] / B) % 1.0
    p = mask_prob(t, eps).expand(B, T)
    masked = torch.rand(B, T, generator=gen) < p
    masked[:, 0] = False
    logits = model(torch.where(masked, mask_id, x)).logits
    target = masked[:, 1:]  # token j (j >= 1) is predicted by the logit at j - 1
    ce = F.cross_entropy(logits[:, :-1][target], x[:, 1:][target], reduction="none")
    return _reduce_masked_ce(ce, target, p[:, 1:], weighting)


def ar_loss(model, x: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy (logit at i predicts token i+1)."""
    logits = model(x[:, :-1]).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))


def lr_at(step: int, spec: TrainSpec) -> float:
    """Linear warm-up to lr, then cosine to min_lr_ratio·lr at max_steps."""
    if step < spec.warmup_steps:
        return spec.lr * (step + 1) / spec.warmup_steps
    span = max(1, spec.max_steps - spec.warmup_steps)
    progress = min(1.0, (step - spec.warmup_steps) / span)
    floor = spec.min_lr_ratio
    return spec.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model, spec: TrainSpec) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (nanoGPT)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": spec.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=spec.lr, betas=(0.9, 0.95))


# -------------------------------------------------------------- held-out ---
@torch.no_grad()
def masked_ce(
    model,
    windows: torch.Tensor,
    t_grid,
    mask_id: int,
    seed: int,
    eps: float = EPS,
    batch_size: int = 64,
    shifted: bool = False,
) -> dict[float, float]:
    """Mean CE over masked tokens at each t, with fixed masks: one seeded u per token, mask u < p(t).

    `shifted` (dream family): the logit at j-1 predicts token j, and the first token is never
    masked (as in `dream_loss`)."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(windows.shape, generator=gen)
    if shifted:
        u[:, 0] = 1.0  # u < p(t) <= 1 never holds: the first token stays
    out = {}
    for t in t_grid:
        masked_all = u < mask_prob(t, eps)
        total, count = 0.0, 0
        for i in range(0, len(windows), batch_size):
            x, masked = windows[i : i + batch_size], masked_all[i : i + batch_size]
            logits = model(torch.where(masked, mask_id, x)).logits
            if shifted:
                logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)  # [:, j] predicts j
            ce = F.cross_entropy(logits[masked].float(), x[masked], reduction="sum")
            total, count = total + ce.item(), count + int(masked.sum())
        out[float(t)] = total / max(count, 1)
    return out


@torch.no_grad()
def next_token_ce(model, windows: torch.Tensor, batch_size: int = 64) -> float:
    """Mean next-token CE over all positions 1..T-1 of the windows."""
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        x = windows[i : i + batch_size]
        logits = model(x[:, :-1]).logits.float()
        total += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum"
        ).item()
        count += x[:, 1:].numel()
    return total / count


def unigram_entropy(train_tokens: torch.Tensor, heldout_tokens: torch.Tensor, vocab: int) -> float:
    """Cross-entropy (nats) of held-out tokens under add-one-smoothed train token frequencies."""
    counts = torch.bincount(train_tokens, minlength=vocab).double() + 1.0
    logq = (counts / counts.sum()).log()
    return float(-logq[heldout_tokens].mean())


def heldout_metrics(model, kind: str, windows, mask_id: int, seed: int, family="llada") -> dict:
    if kind == "dlm":
        ce = masked_ce(model, windows, EVAL_T, mask_id, seed, shifted=family == "dream")
        return {"masked_ce": {f"{t:g}": v for t, v in ce.items()}}
    return {"next_token_ce": next_token_ce(model, windows)}


def quality_bar(kind: str, heldout: dict, unigram: float) -> dict:
    """The quality bar (BAR_* constants above): each check's measured value, its threshold and
    whether it passed, computed from the held-out CE and the unigram entropy, plus `passed`."""
    if kind == "dlm":
        ce = heldout["masked_ce"]
        checks = {
            "ce_t0.15_rel_below_t0.85": (1 - ce["0.15"] / ce["0.85"], BAR_DLM_T015_VS_T085),
            "ce_t0.5_nats_below_unigram": (unigram - ce["0.5"], BAR_DLM_T05_VS_UNIGRAM),
        }
    else:
        checks = {"ce_nats_below_unigram": (unigram - heldout["next_token_ce"], BAR_AR_VS_UNIGRAM)}
    bar = {
        name: {"value": value, "threshold": threshold, "passed": value >= threshold}
        for name, (value, threshold) in checks.items()
    }
    return {**bar, "passed": all(c["passed"] for c in bar.values())}


# ---------------------------------------------------------------- writing ---
def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_model_dir(model, tokenizer_dir: Path, out_dir: Path) -> None:
    """config.json + model.safetensors + tokenizer files, each renamed into place."""
    staging = out_dir / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging), safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copyfile(tokenizer_dir / name, staging / name)
    for f in sorted(staging.iterdir()):
        os.replace(f, out_dir / f.name)
    staging.rmdir()


# ------------------------------------------------------------------ train ---
def resume_file(out_dir: Path) -> Path:
    """Checkpoint of an unfinished run: `.{name}.resume.safetensors` next to the output directory."""
    return out_dir.parent / f".{out_dir.name}.resume.safetensors"


def save_resume_state(path: Path, signature: str, model, opt, gen, progress: dict) -> None:
    """Tensors (weights, AdamW moments, generator state) as safetensors; the run's signature and
    `progress` (step, elapsed, curve, window losses: JSON numbers) in the header metadata.

    Nothing in the file is executable on load (no unpickling), so a planted file cannot run code.
    """
    tensors = {f"model/{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for idx, per_param in opt.state_dict()["state"].items():
        for key, value in per_param.items():
            if not torch.is_tensor(value):
                raise TypeError(f"optimizer state {idx}.{key} is not a tensor: {type(value)}")
            tensors[f"optimizer/{idx}/{key}"] = value.contiguous()
    tensors["generator"] = gen.get_state()
    meta = {"format": RESUME_FORMAT, "signature": signature, "progress": json.dumps(progress)}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load_resume_state(path: Path) -> tuple[str, dict, dict, torch.Tensor, dict]:
    """(signature, model state, AdamW per-parameter state, generator state, progress) of a file
    written by `save_resume_state`; anything else is refused with an error naming the file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") != RESUME_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {RESUME_FORMAT!r}")
        progress = json.loads(meta["progress"])
        generator = tensors.pop("generator")
    except (SafetensorError, ValueError, KeyError) as err:
        raise ValueError(
            f"{path}: not a sinkprune resume checkpoint ({err}); delete it to train from scratch"
        ) from None
    model_state, opt_state = {}, {}
    for name, value in tensors.items():
        group, _, rest = name.partition("/")
        if group == "model":
            model_state[rest] = value
        elif group == "optimizer":
            idx, key = rest.split("/")
            opt_state.setdefault(int(idx), {})[key] = value
        else:
            raise ValueError(f"{path}: unexpected tensor {name!r} in a resume checkpoint")
    return meta["signature"], model_state, opt_state, generator, progress


def train_model(
    train_txt: str | Path,
    valid_txt: str | Path,
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    kind: str,
    arch: dict,
    train: dict,
    seed: int = 0,
    threads: int = 1,
    family: str = "llada",
) -> dict:
    """Train one embedded model and write the HF directory + train_metrics.json. Returns metrics."""
    torch.set_num_threads(threads)
    spec = TrainSpec.from_config(train)
    out_dir, tokenizer_dir = Path(out_dir), Path(tokenizer_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(tokenizer_dir)
    mask_id, vocab = mask_token_id(tokenizer), len(tokenizer)

    train_tokens = encode_file(train_txt, tokenizer)
    valid_tokens = encode_file(valid_txt, tokenizer)
    if len(train_tokens) <= spec.seq_len:
        raise ValueError(f"{train_txt}: {len(train_tokens)} tokens <= train.seq_len {spec.seq_len}")
    windows = heldout_windows(valid_tokens, spec.seq_len, EVAL_WINDOWS)
    curve_windows = windows[:: max(1, len(windows) // CURVE_WINDOWS)][:CURVE_WINDOWS]
    log.info("train %d tokens, valid %d tokens, vocab %d, mask id %d", len(train_tokens),
             len(valid_tokens), vocab, mask_id)  # fmt: skip

    torch.manual_seed(seed)
    model = build_model(arch, kind, vocab, mask_id, family)
    if spec.seq_len > max_length(model):
        raise ValueError(
            f"models.<name>.train.seq_len {spec.seq_len} exceeds arch.max_sequence_length "
            f"{max_length(model)}"
        )
    opt = make_optimizer(model, spec)
    gen = torch.Generator().manual_seed(seed + 1)
    log.info("%s %s model: %d parameters", family, kind, n_params(model))
    dlm_loss = dream_loss if family == "dream" else mdm_loss

    # resume only from a checkpoint of the same run: same settings, seed and token stream
    signature = hashlib.sha256(
        json.dumps([family, kind, arch, asdict(spec), seed, vocab], sort_keys=True).encode()
        + train_tokens.numpy().tobytes()
    ).hexdigest()
    resume_path = resume_file(out_dir)
    step, elapsed_before, curve, window_losses = 0, 0.0, [], []
    if resume_path.is_file():
        saved_signature, model_state, opt_state, gen_state, progress = load_resume_state(
            resume_path
        )
        if saved_signature == signature:
            model.load_state_dict(model_state)
            # hyper-parameters are the spec's (part of the signature); lr is set every step
            opt.load_state_dict({**opt.state_dict(), "state": opt_state})
            gen.set_state(gen_state)
            step, elapsed_before = progress["step"], progress["elapsed"]
            curve, window_losses = progress["curve"], progress["window_losses"]
            log.info("resumed from %s at step %d (%.0f s)", resume_path, step, elapsed_before)
        else:
            log.info("ignoring %s: written by a run with other settings", resume_path)

    budget = spec.minutes * 60.0
    t0 = time.perf_counter() - elapsed_before
    last_ckpt = time.perf_counter()
    stopped_by = "max_steps"
    model.train()
    bar = tqdm(total=spec.max_steps, initial=step, desc=f"train {kind}", mininterval=5)
    while step < spec.max_steps:
        if time.perf_counter() - t0 >= budget:
            stopped_by = "minutes"
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(step, spec)
        x = random_windows(train_tokens, spec.batch_size, spec.seq_len, gen)
        if kind == "dlm":
            loss = dlm_loss(model, x, mask_id, gen, weighting=spec.loss_weighting)
        else:
            loss = ar_loss(model, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        opt.step()
        step += 1
        window_losses.append(loss.item())
        bar.update(1)
        if step % spec.eval_every == 0 or step == spec.max_steps:
            model.eval()
            point = {
                "step": step,
                "tokens": step * spec.batch_size * spec.seq_len,
                "seconds": round(time.perf_counter() - t0, 2),
                "lr": lr_at(step - 1, spec),
                "train_loss": sum(window_losses) / len(window_losses),
            }
            if kind == "dlm":
                point["heldout_masked_ce_t0.5"] = masked_ce(
                    model, curve_windows, [0.5], mask_id, seed, shifted=family == "dream"
                )[0.5]
            else:
                point["heldout_next_token_ce"] = next_token_ce(model, curve_windows)
            model.train()
            curve.append(point)
            window_losses = []
            log.info("step %d: %s", step, point)
        if time.perf_counter() - last_ckpt >= CHECKPOINT_SECONDS and step < spec.max_steps:
            progress = {
                "step": step,
                "elapsed": time.perf_counter() - t0,
                "curve": curve,
                "window_losses": window_losses,
            }
            save_resume_state(resume_path, signature, model, opt, gen, progress)
            last_ckpt = time.perf_counter()
    bar.close()
    wall = time.perf_counter() - t0
    model.eval()

    unigram = unigram_entropy(train_tokens, windows.reshape(-1), vocab)
    heldout = heldout_metrics(model, kind, windows, mask_id, seed, family)
    tokens = step * spec.batch_size * spec.seq_len
    metrics = {
        "family": family,
        "kind": kind,
        "n_params": n_params(model),
        "vocab_size": vocab,
        "mask_token_id": mask_id,
        "steps": step,
        "stopped_by": stopped_by,
        "tokens": tokens,
        "train_seconds": round(wall, 2),
        "tokens_per_second": round(tokens / max(wall, 1e-9), 1),
        "threads": threads,
        "seed": seed,
        "train": asdict(spec),
        "heldout": {
            "split": str(valid_txt),
            "windows": len(windows),
            "seq_len": spec.seq_len,
            "units": "nats",
            "unigram_entropy": unigram,
            **heldout,
        },
        "quality_bar": quality_bar(kind, heldout, unigram),
        "loss_curve": curve,
    }
    save_model_dir(model, tokenizer_dir, out_dir)
    metrics["files"] = checkpoint_digests(out_dir)  # sha256 every consumer checks (artifacts.py)
    _atomic_write_text(out_dir / "train_metrics.json", json.dumps(metrics, indent=2) + "\n")
    resume_path.unlink(missing_ok=True)
    log.info("held-out %s; unigram %.3f; bar %s", heldout, unigram, metrics["quality_bar"])
    if not metrics["quality_bar"]["passed"]:
        log.warning("%s misses the quality bar: %s", out_dir.name, metrics["quality_bar"])
    return metrics
