"""Rule `tokenizer`: byte-level BPE on the train split (sinkprune.tokenizer.make_tokenizer)."""

import logging
import os

from sinkprune.tokenizer import make_tokenizer

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
os.environ["RAYON_NUM_THREADS"] = str(snakemake.threads)
make_tokenizer(
    snakemake.input.train,
    os.path.dirname(snakemake.output.json),
    snakemake.params.vocab_size,
)
