# Pruned checkpoints, one per variant (config/README.md#pruning, method.md §5).
from sinkprune import resources as res


rule prune:
    input:
        unpack(prune_inputs),
    output:
        report=f"{RESULTS}/{{model}}/pruned/{{variant}}/prune_report.json",
        config=f"{RESULTS}/{{model}}/pruned/{{variant}}/config.json",
    log:
        log="logs/prune/{model}/{variant}.log",
        timing="logs/prune/{model}/{variant}.timing.json",  # wall clock, peak memory
    benchmark:
        "benchmarks/prune/{model}/{variant}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("prune")
    resources:
        gpu=gpu_for("prune"),
        gpu_model=gpu_model_for("prune"),
        mem_mb=mem_mb_for("prune"),
        runtime=runtime_for("prune"),
    params:
        settings=prune_params,
    script:
        "../scripts/prune.py"
