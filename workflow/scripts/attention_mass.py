"""Rule `attention_mass`: mass.parquet (sinkprune.attention.compute_attention_mass)."""

from sinkprune.attention import compute_attention_mass
from sinkprune.logs import log_to

log_to(snakemake.log[0])
p = snakemake.params
compute_attention_mass(
    snakemake.input.model,
    snakemake.input.samples,
    snakemake.output[0],
    grid=p.grid,
    eps=p.eps,
    seed=p.seed,
    chunk_size=p.chunk_size,
    threads=snakemake.threads,
    require_gpu=snakemake.resources.gpu > 0,
)
