"""Logging set-up shared by the workflow wrappers: one format, to the rule's `log:` file."""

import logging

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def log_to(path: str, level: int = logging.INFO) -> None:
    """Send this process's log records to `path` (a rule's `snakemake.log[0]`)."""
    logging.basicConfig(filename=path, level=level, format=FORMAT)
