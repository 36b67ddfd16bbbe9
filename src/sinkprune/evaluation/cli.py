"""`sinkprune-eval`: lm-eval's own command line with the `sinkprune_dlm` model registered.

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 sinkprune-eval --model sinkprune_dlm \\
        --model_args pretrained=results/tiny-dlm/pruned/dense,mc_num=32 \\
        --include_path results/tasks --tasks shakespeare_next_line --output_path out/
"""

from __future__ import annotations


def main() -> None:
    from lm_eval.__main__ import cli_evaluate

    import sinkprune.evaluation.lm  # noqa: F401  (registers the model with lm-eval)

    cli_evaluate()


if __name__ == "__main__":
    main()
