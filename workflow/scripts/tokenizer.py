"""Rule `tokenizer`: byte-level BPE on the train split (sinkprune.tokenizer.make_tokenizer)."""

import os

from sinkprune.logs import log_to
from sinkprune.tokenizer import make_tokenizer

log_to(snakemake.log[0])
os.environ["RAYON_NUM_THREADS"] = str(snakemake.threads)
make_tokenizer(
    snakemake.input.train,
    os.path.dirname(snakemake.output.json),
    snakemake.params.vocab_size,
)
