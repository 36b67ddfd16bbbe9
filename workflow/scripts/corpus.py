"""Rule `corpus`: train/valid/test splits and stats.json (sinkprune.corpus.make_corpus)."""

from sinkprune.corpus import make_corpus
from sinkprune.logs import log_to

log_to(snakemake.log[0])
out = snakemake.output
make_corpus(
    dict(snakemake.params.corpus),
    snakemake.params.seed,
    train=out.train,
    valid=out.valid,
    test=out.test,
    stats=out.stats,
)
