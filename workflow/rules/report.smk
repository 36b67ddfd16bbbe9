# Paper tables and figures from the evaluation results (sinkprune.report), registered for
# `snakemake --report results/report.html`. One folder per model under each output directory.


rule tables:
    input:
        evals=eval_targets(),
        published=f"{workflow.basedir}/resources/paper_results.csv",  # shipped with the repo
        official=f"{workflow.basedir}/resources/llada_official_eval.csv",
    output:
        tables=report(
            directory(f"{RESULTS}/tables/pruning"),
            patterns=["{model}/{table}.csv"],
            caption="../report/tables.rst",
            category="Pruning tables",
            subcategory="{model}",
            labels={"model": "{model}", "table": "{table}"},
        ),
        claims=report(
            f"{RESULTS}/tables/claims.md",
            caption="../report/claims.rst",
            category="Pruning tables",
            labels={"model": "all", "table": "claims"},
        ),
    log:
        "logs/tables.log",
    benchmark:
        "benchmarks/tables.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,
        mem_mb=2000,
        runtime=10,
    params:
        models=config["models"],
        evaluation=config["evaluation"],
        pruning=config["pruning"],
        calibration=config["calibration"],
        diffusion=config["diffusion"],
    script:
        "../scripts/tables.py"


rule figures:
    input:
        evals=eval_targets(),
    output:
        report(
            directory(f"{RESULTS}/figures/pruning"),
            patterns=["{model}/{figure}.png"],
            caption="../report/figures.rst",
            category="Pruning figures",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "{figure}"},
        ),
    log:
        "logs/figures.log",
    benchmark:
        "benchmarks/figures.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,
        mem_mb=2000,
        runtime=10,
    params:
        models=config["models"],
        evaluation=config["evaluation"],
        pruning=config["pruning"],
        calibration=config["calibration"],
        diffusion=config["diffusion"],
    script:
        "../scripts/figures.py"
