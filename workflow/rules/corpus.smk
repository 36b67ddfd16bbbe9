# Corpus splits and the byte-level BPE tokenizer (config/README.md#corpus, #tokenizer).


rule corpus:
    input:
        corpus_input,
    output:
        train=f"{RESULTS}/corpus/train.txt",
        valid=f"{RESULTS}/corpus/valid.txt",
        test=f"{RESULTS}/corpus/test.txt",
        stats=f"{RESULTS}/corpus/stats.json",
    log:
        "logs/corpus.log",
    benchmark:
        "benchmarks/corpus.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,
        mem_mb=2000,
        runtime=10,
    params:
        corpus=config["corpus"],
        seed=config["seed"],
    script:
        "../scripts/corpus.py"


rule tokenizer:
    input:
        train=f"{RESULTS}/corpus/train.txt",
    output:
        json=f"{RESULTS}/tokenizer/tokenizer.json",
        tokenizer_config=f"{RESULTS}/tokenizer/tokenizer_config.json",
    log:
        "logs/tokenizer.log",
    benchmark:
        "benchmarks/tokenizer.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,
        mem_mb=2000,
        runtime=10,
    params:
        vocab_size=config["tokenizer"]["vocab_size"],
    script:
        "../scripts/tokenizer.py"
