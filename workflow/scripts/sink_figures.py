"""Rule `sink_figures`: heatmaps, dominant positions, metric bars, GIF (sinkprune.sink_figures)."""

from pathlib import Path

from sinkprune.logs import log_to
from sinkprune.sink_figures import make_sink_figures

log_to(snakemake.log[0])
p = snakemake.params
make_sink_figures(
    list(snakemake.input.scores),
    list(snakemake.input.stats),
    models=list(p.models),
    kinds=[p.kinds[m] for m in p.models],
    n_samples=p.n_samples,
    out_dir=Path(snakemake.output.gif).parent,
)
