"""Rule `attention_mass`: mass.parquet (sinkprune.attention.compute_attention_mass)."""

import logging

from sinkprune.attention import compute_attention_mass

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
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
