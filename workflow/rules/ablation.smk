# The ablation ladders and the layer-wise allocation report (docs/methods.md,
# config/README.md#pruning): paired differences between variants, from the evaluation results.


rule sink_ladder:
    input:
        evals=ladder_inputs,
    output:
        md=report(
            f"{RESULTS}/tables/ablation/sink_ladder.md",
            caption="../report/ablation.rst",
            category="Ablation",
        ),
        csv=f"{RESULTS}/tables/ablation/sink_ladder.csv",
    log:
        "logs/sink_ladder.log",
    benchmark:
        "benchmarks/sink_ladder.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,
        mem_mb=2000,
        runtime=10,
    params:
        models=ablated_models(),
        ablation=config["pruning"].get("ablation", []),
        tasks=config["evaluation"]["tasks"],
    script:
        "../scripts/sink_ladder.py"


rule allocation:
    input:
        unpack(allocation_inputs),
    output:
        md=report(
            f"{RESULTS}/tables/allocation/{{model}}.md",
            caption="../report/allocation.rst",
            category="Allocation",
        ),
        csv=f"{RESULTS}/tables/allocation/{{model}}.csv",
        png=report(
            f"{RESULTS}/figures/allocation/{{model}}.png",
            caption="../report/allocation.rst",
            category="Allocation",
        ),
        pdf=f"{RESULTS}/figures/allocation/{{model}}.pdf",
    log:
        "logs/allocation/{model}.log",
    benchmark:
        "benchmarks/allocation/{model}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,
        mem_mb=2000,
        runtime=10,
    params:
        variants=allocation_params,
        tasks=config["evaluation"]["tasks"],
    script:
        "../scripts/allocation_report.py"
