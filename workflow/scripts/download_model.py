"""Snakemake wrapper: download one hub model into resources/models/{model}/ (sinkprune.hub)."""

from sinkprune.hub import download_model
from sinkprune.logs import log_to

log_to(snakemake.log[0])
spec = snakemake.params.spec
download_model(
    spec["hub_id"],
    spec["revision"],
    spec["family"],
    snakemake.output[0],
    key=f"models.{snakemake.wildcards.model}",
)
