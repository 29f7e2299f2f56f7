# Instructions beyond the class: for each condition whose prompts are templates (age and sex), the
# attribute judges (trained once on the real train slices), each seed's instructed images and the
# class-only baseline's images with the same requests shuffled, judged; the study's table.


rule train_attribute_judges:
    input:
        slices=rules.write_slice_table.output[0],
    output:
        model="results/evaluate/attributes/model.pt",
        metrics="results/evaluate/attributes/metrics.json",
    log:
        "results/logs/train_attribute_judges.log",
    benchmark:
        "results/benchmarks/train_attribute_judges.tsv"
    conda:
        "../../envs/evaluate.yaml"
    threads: config["job_threads"]
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        classifier=CLASSIFIER_PARAMS | {"seed": config["evaluate"]["seed"]},
    script:
        "../scripts/train_attribute_judges.py"


rule judge_instructions:
    input:
        unpack(instruction_inputs),
        scores=rules.flag_outliers.output[0],
        set_metrics=rules.measure_sets.output[0],
        judges=rules.train_attribute_judges.output.model,
    output:
        study("evaluate/seed{seed}/instructions/{condition}.tsv"),
    log:
        study("logs/judge_instructions/seed{seed}/{condition}.log"),
    benchmark:
        study("benchmarks/judge_instructions/seed{seed}/{condition}.tsv")
    conda:
        "../../envs/evaluate.yaml"
    params:
        baseline=INSTRUCTION_BASELINE,
        batch_size=config["evaluate"]["cnn_batch_size"],
    script:
        "../scripts/judge_instructions.py"


rule summarise_instructions:
    input:
        images=expand(
            study("evaluate/seed{seed}/instructions/{condition}.tsv"),
            seed=SEEDS,
            condition=TEMPLATED,
        ),
        slices=rules.write_slice_table.output[0],
        morphometry=rules.measure_real_morphometry.output[0],
        judges=rules.train_attribute_judges.output.model,
    output:
        table=study("evaluate/instructions.tsv"),
        images=study("evaluate/instruction_images.tsv"),
        reals=study("evaluate/instruction_reals.tsv"),
    log:
        study("logs/summarise_instructions.log"),
    benchmark:
        study("benchmarks/summarise_instructions.tsv")
    conda:
        "../../envs/evaluate.yaml"
    params:
        n_bootstrap=config["evaluate"]["n_bootstrap"],
        seed=config["evaluate"]["seed"],
    script:
        "../scripts/summarise_instructions.py"


rule report_instructions:
    input:
        table=rules.summarise_instructions.output.table,
        images=rules.summarise_instructions.output.images,
        reals=rules.summarise_instructions.output.reals,
    output:
        csv=report(
            study("instructions.csv"),
            category="Instructions",
            caption="../report/instructions.rst",
        ),
        md=study("instructions.md"),
        figures=report(
            expand(study("figures/instructions_seed{seed}.png"), seed=SEEDS),
            category="Instructions",
            caption="../report/instructions.rst",
        ),
    log:
        study("logs/report_instructions.log"),
    benchmark:
        study("benchmarks/report_instructions.tsv")
    conda:
        "../../envs/evaluate.yaml"
    params:
        conditions=active_specs(config),
        seeds=SEEDS,
        run_label=config["run_label"],
        synthetic=config["synthetic"],
    script:
        "../scripts/report_instructions.py"
