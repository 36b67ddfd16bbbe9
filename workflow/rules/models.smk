# Dense base models: trained here (train_model) or downloaded from the hub (download_model).
# config/README.md#models


rule download_model:
    output:
        directory("resources/models/{model}"),
    log:
        "logs/download_model/{model}.log",
    benchmark:
        "benchmarks/download_model/{model}.tsv"
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 2
    resources:
        gpu=0,
        mem_mb=mem_mb_for("download_model"),
        runtime=runtime_for("download_model"),
    params:
        spec=hub_spec,
    script:
        "../scripts/download_model.py"


rule train_model:
    input:
        train=f"{RESULTS}/corpus/train.txt",
        valid=f"{RESULTS}/corpus/valid.txt",
        tokenizer=f"{RESULTS}/tokenizer/tokenizer.json",
        tokenizer_config=f"{RESULTS}/tokenizer/tokenizer_config.json",
    output:
        directory(f"{RESULTS}/models/{{model}}"),
    log:
        "logs/train_model/{model}.log",
    benchmark:
        "benchmarks/train_model/{model}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("train")
    resources:
        gpu=gpu_for("train"),
        mem_mb=mem_mb_for("train"),
        runtime=runtime_for("train"),
    params:
        spec=train_spec,
        seed=config["seed"],
    script:
        "../scripts/train_model.py"
