"""Rule `sink_norms`: norms.safetensors, the statistics of sink / sink_sp from one dense pass
(sinkprune.sink_norms.compute_sink_norms)."""

from sinkprune.logs import log_to
from sinkprune.sink_norms import compute_sink_norms

log_to(snakemake.log[0])
p = snakemake.params
inp = snakemake.input
compute_sink_norms(
    inp.model,
    inp.samples,
    inp.scores,
    snakemake.output[0],
    grid=p.grid,
    eps=p.eps,
    noise_seed=p.noise_seed,
    threads=snakemake.threads,
    require_gpu=snakemake.resources.gpu > 0,
)
