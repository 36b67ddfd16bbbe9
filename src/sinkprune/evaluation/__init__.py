"""Evaluation (method.md §7): the lm-eval model `sinkprune_dlm`, local tasks, held-out likelihood.

Modules: `likelihood` (MC estimator), `generate` (low-confidence remasking), `lm` (the lm-eval
model class), `tasks` (local task generation), `heldout` (masked-token CE / ELBO), `run` (what
rule `evaluate` calls), `cli` (`sinkprune-eval`). Importing this package is cheap (no torch).
"""
