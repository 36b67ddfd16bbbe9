"""The options of the log-likelihood estimator (`evaluation.estimator`, method.md §7).

Kept free of torch so that config validation can build it at DAG time; the estimator itself is
`sinkprune.evaluation.likelihood.estimate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

STOP_ON = ("metric", "acc", "acc_norm", "both")


@dataclass(frozen=True)
class Estimator:
    """`evaluation.estimator` (config/README.md#evaluation): how the answer choices' likelihoods
    are estimated. Every option off is the standard protocol (`mc_num` independent rows)."""

    crn: bool = False
    exact_max_patterns: int = 0
    stopping: bool = False
    round: int = 8
    z: float = 2.0
    cap: int | None = None  # rows per choice at most when stopping; None: the task's mc_num
    eliminate: bool = False  # stop sampling a choice the rule has settled (successive elimination)
    stop_on: str = "acc"  # the decision stopping waits for: acc, acc_norm or both; in the config
    # also "metric" (the default there): the task's metric, resolved by task_estimator

    def __post_init__(self) -> None:
        key = "evaluation.estimator"
        for name in ("crn", "stopping", "eliminate"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{key}.{name} must be true or false")
        if int(self.exact_max_patterns) < 0:
            raise ValueError(f"{key}.exact_max_patterns must be >= 0 (0 = off)")
        if int(self.round) < 2:
            raise ValueError(f"{key}.round must be >= 2 (a standard error needs two rows)")
        if not float(self.z) > 0:
            raise ValueError(f"{key}.z must be > 0")
        if self.cap is not None and int(self.cap) < 1:
            raise ValueError(f"{key}.cap must be >= 1 or null (null: the task's mc_num)")
        if self.stop_on not in STOP_ON:
            raise ValueError(f"{key}.stop_on must be one of {list(STOP_ON)}, got {self.stop_on!r}")

    @classmethod
    def from_dict(cls, options: Mapping | Estimator | None) -> Estimator:
        """From a config mapping (unknown keys are an error naming them)."""
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"evaluation.estimator: unknown key(s) {unknown} (known: {sorted(known)})"
            )
        return cls(**options)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def standard(self) -> bool:
        """True when every option is off: the per-request `mc_loglikelihood` path."""
        return not (self.crn or self.exact_max_patterns > 0 or self.stopping)

    def exact_for(self, length: int) -> bool:
        """Enumerate a continuation of `length` tokens: 2^ℓ − 1 ≤ exact_max_patterns."""
        return length > 0 and (1 << length) - 1 <= self.exact_max_patterns

    def max_rows(self, mc_num: int) -> int:
        """Monte-Carlo rows per choice at most."""
        return int(self.cap or mc_num) if self.stopping else int(mc_num)

    def stratum_size(self, mc_num: int, batch_size: int) -> int:
        """Rows sharing one k draw: a round when stopping, else today's min(batch_size, mc_num)."""
        return int(self.round) if self.stopping else max(1, min(int(batch_size), int(mc_num)))


def task_estimator(config: Mapping, task: str) -> dict:
    """The estimator options of `task`: `evaluation.estimator` updated by the task's own
    `evaluation.tasks.<task>.estimator`, completed with the defaults (every option off), with
    `stop_on: metric` (the config's default) resolved from the task's `metric`."""
    evaluation = config.get("evaluation", {})
    settings = evaluation.get("tasks", {}).get(task, {})
    merged = {"stop_on": "metric"} | dict(evaluation.get("estimator") or {})
    merged |= dict(settings.get("estimator") or {})
    try:
        options = Estimator.from_dict(merged).as_dict()
    except (TypeError, ValueError) as err:
        where = f"evaluation.tasks.{task}.estimator / evaluation.estimator"
        raise ValueError(f"{where}: {err}") from None
    if options["stop_on"] == "metric":
        metric = str(settings.get("metric", "acc")).split(",")[0]
        options["stop_on"] = "acc_norm" if metric == "acc_norm" else "acc"
    return options
