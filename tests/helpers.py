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
