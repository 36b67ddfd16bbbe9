# Per-timestep attention mass of the dense model (config/README.md#attention, method.md §3).
from sinkprune.config import timestep_grid


rule attention_mass:
    input:
        model=model_dir,
        samples=f"{RESULTS}/{{model}}/calibration/samples.parquet",
    output:
        f"{RESULTS}/{{model}}/attention/mass.parquet",
    log:
        "logs/attention_mass/{model}.log",
    benchmark:
        "benchmarks/attention_mass/{model}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("attention_mass")
    resources:
        gpu=gpu_for("attention_mass"),
        gpu_model=gpu_model_for("attention_mass"),
        mem_mb=mem_mb_for("attention_mass"),
        runtime=runtime_for("attention_mass"),
    params:
        grid=timestep_grid(config),
        eps=config["diffusion"]["eps"],
        seed=config["calibration"]["seed"],
        chunk_size=config["attention"]["chunk_size"],
    script:
        "../scripts/attention_mass.py"
