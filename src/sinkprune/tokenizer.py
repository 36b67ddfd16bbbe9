"""Byte-level BPE tokenizer for the embedded models, trained on the corpus train split.

Saved as a `transformers.PreTrainedTokenizerFast` directory (tokenizer.json +
tokenizer_config.json) that reloads offline with `AutoTokenizer.from_pretrained(dir)`.
Special tokens get the first ids: `<|bos|>` 0, `<|eos|>` 1, `<|pad|>` 2, `<|mdm_mask|>` 3 (the
masked-diffusion MASK of method.md §2). Encoding adds no special tokens by itself: callers
place bos/eos where they want them. See config/README.md#tokenizer.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

BOS, EOS, PAD, MASK = "<|bos|>", "<|eos|>", "<|pad|>", "<|mdm_mask|>"
SPECIAL_TOKENS = [BOS, EOS, PAD, MASK]
N_BYTES = 256
FILES = ("tokenizer.json", "tokenizer_config.json")


def train_bpe(train_files: list[str | Path], vocab_size: int):
    """A `tokenizers.Tokenizer` (byte-level BPE) of `vocab_size` ids, special tokens first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < N_BYTES + len(SPECIAL_TOKENS):
        raise ValueError(
            f"tokenizer.vocab_size must be >= {N_BYTES + len(SPECIAL_TOKENS)} "
            f"(256 bytes + {len(SPECIAL_TOKENS)} special tokens), got {vocab_size}"
        )
    for f in train_files:
        if not Path(f).is_file() or Path(f).stat().st_size == 0:
            raise ValueError(f"tokenizer training file {f} is missing or empty")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train([str(f) for f in train_files], trainer)
    log.info("trained byte-level BPE: %d ids from %s", tok.get_vocab_size(), train_files)
    return tok


def wrap(tok):
    """Wrap a `tokenizers.Tokenizer` as a PreTrainedTokenizerFast with our special tokens."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, mask_token=MASK
    )


def save_tokenizer(tokenizer, out_dir: str | Path) -> list[Path]:
    """save_pretrained + a portable tokenizer_class; returns the written files (FILES)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out_dir))
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    # transformers 5 writes "TokenizersBackend", unknown to 4.x; both load this name
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    paths = [out_dir / f for f in FILES]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise RuntimeError(f"save_pretrained did not write {missing}")
    return paths


def make_tokenizer(train_txt: str | Path, out_dir: str | Path, vocab_size: int):
    """Train on the corpus train split and save to `out_dir` (rule `tokenizer`)."""
    tokenizer = wrap(train_bpe([train_txt], vocab_size))
    save_tokenizer(tokenizer, out_dir)
    log.info("saved tokenizer to %s (mask id %d)", out_dir, mask_token_id(tokenizer))
    return tokenizer


def load_tokenizer(path: str | Path):
    """Load a saved tokenizer offline from its directory or its tokenizer.json path."""
    from transformers import AutoTokenizer

    path = Path(path)
    if path.is_file():
        path = path.parent
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer.json in {path} (expected a tokenizer directory)")
    import sinkprune.models  # noqa: F401  config.json of a checkpoint dir: our classes, no auto_map

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)


def mask_token_id(tokenizer) -> int:
    """Id of the masked-diffusion MASK token (`<|mdm_mask|>`); errors if it is not one token."""
    ids = tokenizer.encode(MASK, add_special_tokens=False)
    if len(ids) != 1 or tokenizer.mask_token != MASK or ids[0] != tokenizer.mask_token_id:
        raise ValueError(f"tokenizer has no single-id mask token {MASK!r} (got ids {ids})")
    return ids[0]
