# Calibration windows of the train split (config/README.md#calibration, method.md §2).


rule calibration:
    input:
        train=f"{RESULTS}/corpus/train.txt",
        model=model_dir,
    output:
        f"{RESULTS}/{{model}}/calibration/samples.parquet",
    log:
        "logs/calibration/{model}.log",
    benchmark:
        "benchmarks/calibration/{model}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,
        mem_mb=mem_mb_for("calibration"),
        runtime=runtime_for("calibration"),
    params:
        nsamples=config["calibration"]["nsamples"],
        seqlen=config["calibration"]["seqlen"],
        seed=config["calibration"]["seed"],
    script:
        "../scripts/calibration.py"
