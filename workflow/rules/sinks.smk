# Sink scores, the sink norms of sink-aware Wanda, sink statistics, the AR-vs-DLM table and
# figures (config/README.md#sinks, method.md §4, §5, §6).


rule sink_masks:
    input:
        mass=f"{RESULTS}/{{model}}/attention/mass.parquet",
    output:
        f"{RESULTS}/{{model}}/sinks/scores.parquet",
    log:
        "logs/sink_masks/{model}.log",
    benchmark:
        "benchmarks/sink_masks/{model}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,
        mem_mb=mem_mb_for("sink_masks"),
        runtime=runtime_for("sink_masks"),
    params:
        rule=config["sinks"]["rule"],
        k=config["sinks"]["k"],
        alpha=config["sinks"]["alpha"],
        binary_eps=config["sinks"]["binary_eps"],
    script:
        "../scripts/sink_masks.py"


rule sink_norms:
    input:
        model=model_dir,
        samples=f"{RESULTS}/{{model}}/calibration/samples.parquet",
        scores=f"{RESULTS}/{{model}}/sinks/scores.parquet",
    output:
        f"{RESULTS}/{{model}}/sinks/norms.safetensors",
    log:
        "logs/sink_norms/{model}.log",
    benchmark:
        "benchmarks/sink_norms/{model}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("sink_norms")
    resources:
        gpu=gpu_for("sink_norms"),
        gpu_model=gpu_model_for("sink_norms"),
        mem_mb=mem_mb_for("sink_norms"),
        runtime=runtime_for("sink_norms"),
    params:
        grid=timestep_grid(config),
        eps=config["diffusion"]["eps"],
        noise_seed=config["calibration"]["seed"],
        # the file layout's version: not read by the script, tracked so a new layout reruns
        norms_format=NORMS_FORMAT,
    script:
        "../scripts/sink_norms.py"


rule sink_stats:
    input:
        scores=f"{RESULTS}/{{model}}/sinks/scores.parquet",
    output:
        f"{RESULTS}/{{model}}/sinks/stats.json",
    log:
        "logs/sink_stats/{model}.log",
    benchmark:
        "benchmarks/sink_stats/{model}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,
        mem_mb=mem_mb_for("sink_stats"),
        runtime=runtime_for("sink_stats"),
    params:
        kind=model_kind,
    script:
        "../scripts/sink_stats.py"


rule sink_properties:
    input:
        stats=expand(f"{RESULTS}/{{model}}/sinks/stats.json", model=MODELS),
    output:
        md=f"{RESULTS}/tables/sink_properties.md",
        csv=f"{RESULTS}/tables/sink_properties.csv",
    log:
        "logs/sink_properties.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/sink_properties.py"


rule sink_figures:
    input:
        scores=expand(f"{RESULTS}/{{model}}/sinks/scores.parquet", model=MODELS),
        stats=expand(f"{RESULTS}/{{model}}/sinks/stats.json", model=MODELS),
    output:
        expand(
            f"{RESULTS}/figures/sinks/{{name}}.{{ext}}",
            name=["heatmap", "dominant_position", "metrics"],
            ext=["png", "pdf"],
        ),
        gif=f"{RESULTS}/figures/sinks/animation.gif",
    log:
        "logs/sink_figures.log",
    benchmark:
        "benchmarks/sink_figures.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,
        mem_mb=4000,
        runtime=10,
    params:
        models=MODELS,
        kinds=model_kinds(),
        n_samples=config["sinks"]["figure_samples"],
    script:
        "../scripts/sink_figures.py"
