"""Rule `corpus`: train/valid/test splits and stats.json (sinkprune.corpus.make_corpus)."""

import logging

from sinkprune.corpus import make_corpus

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
out = snakemake.output
make_corpus(
    dict(snakemake.params.corpus),
    snakemake.params.seed,
    train=out.train,
    valid=out.valid,
    test=out.test,
    stats=out.stats,
)
