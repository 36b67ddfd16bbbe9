"""Snakemake wrapper: download one hub model into resources/models/{model}/ (sinkprune.hub)."""

import logging

from sinkprune.hub import download_model

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
spec = snakemake.params.spec
download_model(
    spec["hub_id"],
    spec["revision"],
    spec["family"],
    snakemake.output[0],
    key=f"models.{snakemake.wildcards.model}",
)
