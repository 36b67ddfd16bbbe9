"""Rule `sink_figures`: heatmaps, dominant positions, metric bars, GIF (sinkprune.sink_figures)."""

import logging
from pathlib import Path

from sinkprune.sink_figures import make_sink_figures

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
p = snakemake.params
make_sink_figures(
    list(snakemake.input.scores),
    list(snakemake.input.stats),
    models=list(p.models),
    kinds=[p.kinds[m] for m in p.models],
    n_samples=p.n_samples,
    out_dir=Path(snakemake.output.gif).parent,
)
