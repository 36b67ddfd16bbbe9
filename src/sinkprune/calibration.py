"""Calibration windows and the forward (noising) process (method.md §2).

Artifact: `results/{model}/calibration/samples.parquet` with one row per window
(`sample_id` int32, `token_ids` list<int32>), written and read only through this module.

The noising is deterministic: the mask of sample `s` at step `k` comes from a generator seeded
by (seed, s, k), so every stage that needs x_t (attention mass, sink-aware pruning) regenerates
the same noised inputs by calling `noised_batch` with the same `NoiseSpec`.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

log = logging.getLogger(__name__)

SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.int32(), nullable=False),
        pa.field("token_ids", pa.list_(pa.int32()), nullable=False),
    ]
)


# ----------------------------------------------------------------- windows ---
def tokenize_corpus(text_path: str | Path, tokenizer_dir: str | Path) -> np.ndarray:
    """Token ids of a whole split file, tokenised as the release's loader does: the whole text in
    one call with the tokenizer's default special tokens (LLaDA's tokenizer prepends BOS).

    The `corpus` rule has joined the documents (`corpus.dataset.join`, single spaces for
    WikiText-2 as in method.md §2) and ended the file with one newline; that newline is not part
    of the joined text and is dropped, so a hub split is exactly `join.join(records)`.
    """
    from transformers import AutoTokenizer

    from .artifacts import ArtifactError

    try:
        tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    except Exception as err:  # tokenizers / json raise many types on a corrupt file
        raise ArtifactError(
            f"{tokenizer_dir}: its tokenizer files do not load ({str(err).splitlines()[0]})"
        ) from None
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"{tokenizer_dir}: calibration needs a fast (tokenizers) tokenizer")
    with open(text_path, encoding="utf-8", newline="") as f:
        text = f.read()
    text = text[:-1] if text.endswith("\n") else text
    ids = tok(text, verbose=False)["input_ids"]
    if not ids:
        raise ValueError(f"{text_path}: no tokens (empty corpus split?)")
    return np.asarray(ids, dtype=np.int64)


def sample_windows(ids: np.ndarray, nsamples: int, seqlen: int, seed: int) -> np.ndarray:
    """`nsamples` windows of `seqlen` tokens with uniform random starts (release's Wanda loader).

    Start i ~ U{0, ..., len − seqlen − 1} from `random.Random(seed)`; windows may overlap.
    """
    n = len(ids)
    if n < seqlen + 1:
        raise ValueError(
            f"calibration.seqlen={seqlen}: the tokenised train split has only {n} tokens "
            f"(need at least seqlen + 1)"
        )
    rng = random.Random(seed)
    starts = [rng.randint(0, n - seqlen - 1) for _ in range(nsamples)]
    return np.stack([ids[i : i + seqlen] for i in starts]).astype(np.int32)


def write_samples(windows: np.ndarray, path: str | Path) -> None:
    table = pa.table(
        {
            "sample_id": pa.array(np.arange(len(windows), dtype=np.int32)),
            "token_ids": pa.array([w.tolist() for w in windows], type=pa.list_(pa.int32())),
        },
        schema=SAMPLES_SCHEMA,
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def load_samples(path: str | Path) -> tuple[np.ndarray, torch.Tensor]:
    """(sample_ids (N,), token_ids LongTensor (N, T)) from a samples.parquet."""
    from .artifacts import read_table

    table = read_table(path, SAMPLES_SCHEMA)
    ids = table.column("sample_id").to_numpy()
    lists = table.column("token_ids").combine_chunks()
    lengths = set(lists.value_lengths().to_numpy().tolist())
    if len(lengths) != 1:
        raise ValueError(f"{path}: windows have different lengths {sorted(lengths)}")
    tokens = lists.flatten().to_numpy().astype(np.int64).reshape(len(ids), lengths.pop())
    return ids, torch.from_numpy(tokens)


def build_calibration(
    text_path: str | Path,
    model_dir: str | Path,
    out_path: str | Path,
    nsamples: int,
    seqlen: int,
    seed: int,
) -> np.ndarray:
    """Stage `calibration`: tokenise the train split with the model's tokenizer, draw windows.

    The first job to load a hub checkpoint: `seqlen` is checked against its config.json here
    (the config may not declare the maximum; sinkprune.config_checks checks what it declares).
    """
    from .config_checks import check_length_at_run_time

    check_length_at_run_time(model_dir, seqlen, "calibration.seqlen")
    ids = tokenize_corpus(text_path, model_dir)
    log.info("%s: %d tokens with the tokenizer of %s", text_path, len(ids), model_dir)
    windows = sample_windows(ids, nsamples, seqlen, seed)
    write_samples(windows, out_path)
    log.info("wrote %d windows of %d tokens to %s", nsamples, seqlen, out_path)
    return windows


# ------------------------------------------------------------------- noise ---
def mask_probability(t: float, eps: float) -> float:
    """p(t) = (1 − ε)·t + ε (method.md §2); p(1) = 1."""
    return (1.0 - eps) * t + eps


def noise(
    input_ids: torch.Tensor,
    t: float,
    eps: float,
    mask_id: int,
    generator: torch.Generator | None = None,
    keep_ends: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t and the boolean mask: each position independently becomes `mask_id` with prob. p(t).

    `keep_ends` never masks the first and last position (Dream, method.md §2). At t = 1 every
    (other) position is masked because uniform draws lie in [0, 1).
    """
    p = mask_probability(t, eps)
    u = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    masked = u < p
    if keep_ends:
        masked[..., 0] = False
        masked[..., -1] = False
    return input_ids.masked_fill(masked, mask_id), masked


@dataclass(frozen=True)
class NoiseSpec:
    """Everything that fixes x_t: mask probability floor, mask id, seed, Dream's kept ends."""

    eps: float
    mask_id: int
    seed: int = 0
    keep_ends: bool = False

    @classmethod
    def for_adapter(cls, adapter, eps: float, seed: int) -> NoiseSpec:
        """The spec of a loaded model: its mask id; first/last kept for the dream family."""
        return cls(eps, adapter.mask_token_id, seed, getattr(adapter, "family", "") == "dream")


def noise_generator(seed: int, sample_id: int, step: int) -> torch.Generator:
    """CPU generator seeded by (seed, sample, step) through numpy's SeedSequence (no collisions)."""
    state = np.random.SeedSequence([int(seed), int(sample_id), int(step)]).generate_state(2)
    g = torch.Generator()
    g.manual_seed(int(state[0]) << 32 | int(state[1]))
    return g


def noised_batch(
    sample_ids, token_ids: torch.Tensor, step: int, t: float, spec: NoiseSpec
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noised inputs of calibration samples at one (step, t) of the grid — the shared x_t.

    Row r of `token_ids` (B, T) is noised with `noise_generator(spec.seed, sample_ids[r], step)`,
    so the result depends only on (sample, step, t, spec), not on batching or device. Attention
    mass (`sinkprune.attention`) and sink-aware pruning call this with the same spec
    (`NoiseSpec(eps=diffusion.eps, mask_id, seed=calibration.seed, keep_ends=family == dream)`)
    and therefore see identical x_t. Returns (x_t, masked) on `token_ids`' device.
    """
    rows, masks = [], []
    for sid, ids in zip(list(sample_ids), token_ids, strict=True):
        g = noise_generator(spec.seed, int(sid), step)
        x, m = noise(ids.cpu(), t, spec.eps, spec.mask_id, g, spec.keep_ends)
        rows.append(x)
        masks.append(m)
    return torch.stack(rows).to(token_ids.device), torch.stack(masks).to(token_ids.device)


# ------------------------------------------------ DWANDA's random-t copies ---
#: Tag in the seed of DWANDA's copies, so their stream never meets the grid's (seed, sample, step).
DWANDA_STREAM = 0xD3A4DA


def copy_generator(seed: int, sample_id: int, copy: int) -> torch.Generator:
    """CPU generator of copy `copy` of sample `sample_id`: SeedSequence([seed, sample, copy, tag])."""
    state = np.random.SeedSequence(
        [int(seed), int(sample_id), int(copy), DWANDA_STREAM]
    ).generate_state(2)
    g = torch.Generator()
    g.manual_seed(int(state[0]) << 32 | int(state[1]))
    return g


def random_t_copies(
    sample_ids,
    token_ids: torch.Tensor,
    repeats: int,
    t_min: float,
    t_max: float,
    spec: NoiseSpec,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DWANDA's calibration inputs: `repeats` noised copies of every window (sample-major: all
    copies of sample 0 first), copy c of sample s with its own t ~ U[t_min, t_max] and each
    position masked with p(t) = (1 − ε)·t + ε (`noise`, Dream's first/last kept), both drawn
    from `copy_generator(spec.seed, s, c)`: the result depends on (sample, copy, spec) only.

    Returns (x (N·repeats, T), t (N·repeats,) float64) on `token_ids`' device.
    """
    rows, ts = [], []
    for sid, ids in zip(list(sample_ids), token_ids, strict=True):
        for c in range(repeats):
            g = copy_generator(spec.seed, int(sid), c)
            u = torch.rand((), generator=g, dtype=torch.float64).item()
            t = t_min + (t_max - t_min) * u
            x, _ = noise(ids.cpu(), t, spec.eps, spec.mask_id, g, spec.keep_ends)
            rows.append(x)
            ts.append(t)
    x = torch.stack(rows).to(token_ids.device)
    return x, torch.tensor(ts, dtype=torch.float64)


def grid_copies(
    sample_ids, token_ids: torch.Tensor, grid: list[tuple[int, float]], spec: NoiseSpec
) -> torch.Tensor:
    """Every x_t of the diffusion grid (step-major, as `sinkprune.pruning.io.load_sink_data` and
    rule sink_norms order them): exactly the inputs of the attention and sink stages."""
    if not grid:
        raise ValueError("diffusion: the timestep grid is empty (check steps/sample_interval)")
    return torch.cat(
        [noised_batch(sample_ids, token_ids, int(s), float(t), spec)[0] for s, t in grid]
    )
