# Local lm-eval tasks and evaluation of every checkpoint (config/README.md#evaluation,
# method.md §7). With evaluation.job_per: variant (default) one `evaluate` job per (model, variant)
# runs all tasks, amortising lm-eval's start-up, and writes one JSON per task plus heldout.json;
# with job_per: task each (variant, task) is its own job and `heldout` runs separately.


rule local_tasks:
    input:
        test=f"{RESULTS}/corpus/test.txt",
        tokenizer=f"{RESULTS}/tokenizer/tokenizer.json",
    output:
        readme=f"{RESULTS}/tasks/README.md",
        loader=f"{RESULTS}/tasks/local_data.py",
        yaml=expand(f"{RESULTS}/tasks/{{task}}.yaml", task=LOCAL_TASKS),
        data=expand(
            f"{RESULTS}/tasks/{{task}}.{{split}}.jsonl",
            task=LOCAL_TASKS,
            split=["train", "test"],
        ),
    log:
        "logs/local_tasks.log",
    benchmark:
        "benchmarks/local_tasks.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,
        mem_mb=2000,
        runtime=10,
    params:
        settings=local_task_params,
    script:
        "../scripts/local_tasks.py"


if EVAL_JOB_PER == "variant":

    rule evaluate:
        input:
            unpack(eval_inputs),
        output:
            tasks=expand(
                f"{RESULTS}/{{model}}/eval/{{variant}}/{{task}}.json",
                task=EVAL_TASKS,
                allow_missing=True,
            ),
            heldout=f"{RESULTS}/{{model}}/eval/{{variant}}/heldout.json",
        log:
            "logs/evaluate/{model}/{variant}.log",
        benchmark:
            "benchmarks/evaluate/{model}/{variant}.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: threads_for("evaluate")
        resources:
            gpu=gpu_for("evaluate"),
            gpu_model=gpu_model_for("evaluate"),
            mem_mb=mem_mb_for("evaluate"),
            runtime=runtime_for("evaluate"),
        params:
            tasks=eval_task_params,
            run=eval_run_params,
        script:
            "../scripts/evaluate.py"

else:

    rule evaluate:
        input:
            unpack(eval_inputs),
        output:
            tasks=[f"{RESULTS}/{{model}}/eval/{{variant}}/{{task}}.json"],
        log:
            "logs/evaluate/{model}/{variant}/{task}.log",
        benchmark:
            "benchmarks/evaluate/{model}/{variant}/{task}.tsv"
        wildcard_constraints:
            task=EVAL_TASK_PATTERN,
        conda:
            "../../envs/torch.yaml"
        threads: threads_for("evaluate")
        resources:
            gpu=gpu_for("evaluate"),
            gpu_model=gpu_model_for("evaluate"),
            mem_mb=mem_mb_for("evaluate"),
            runtime=runtime_for("evaluate"),
        params:
            tasks=eval_task_params,
            run=eval_run_params,
        script:
            "../scripts/evaluate.py"

    rule heldout:
        input:
            unpack(eval_inputs),
        output:
            heldout=f"{RESULTS}/{{model}}/eval/{{variant}}/heldout.json",
        log:
            "logs/heldout/{model}/{variant}.log",
        benchmark:
            "benchmarks/heldout/{model}/{variant}.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: threads_for("heldout")
        resources:
            gpu=gpu_for("heldout"),
            gpu_model=gpu_model_for("heldout"),
            mem_mb=mem_mb_for("heldout"),
            runtime=runtime_for("heldout"),
        params:
            tasks={},
            run=eval_run_params,
        script:
            "../scripts/evaluate.py"
