"""Logging set-up shared by the workflow wrappers: one format, to the rule's `log:` file.

A job that stops on a user-facing error (a bad config value, a corrupt or mismatched artifact, an
unsupported model-config field) ends with one line naming the key or file, in the log and on
stderr, instead of a Python traceback; any other exception keeps its traceback (it is a bug).
"""

import logging
import sys

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

#: sinkprune exceptions whose message is written to be the whole story (one line, names the file)
ONE_LINE_ERRORS = {"ConfigError", "ArtifactError", "ModelConfigError", "HubError"}


def is_one_line_error(err: BaseException) -> bool:
    kind = type(err)
    return kind.__name__ in ONE_LINE_ERRORS and kind.__module__.startswith("sinkprune.")


def _excepthook(kind, err, tb) -> None:
    if is_one_line_error(err):
        line = f"{kind.__name__}: {err}"
        logging.getLogger("sinkprune").error(line)
        print(line, file=sys.stderr)
        return  # Python still exits with status 1
    sys.__excepthook__(kind, err, tb)


def log_to(path: str, level: int = logging.INFO) -> None:
    """Send this process's log records to `path` (a rule's `snakemake.log[0]`); user-facing
    errors end the job with one line (see module docstring)."""
    logging.basicConfig(filename=path, level=level, format=FORMAT)
    sys.excepthook = _excepthook
