# Can the generated images be shared? (config section privacy:) Per attacked model (and per
# condition on the base, which saw none of the slices): every candidate slice's denoising loss and
# the validation images' nearest training slices; per run: the attack, the copies per training
# subject and the step curve.


rule measure_privacy:
    input:
        model=privacy_model,
        slices=rules.write_slice_table.output[0],
        validation=privacy_validation,
    output:
        membership="results/privacy/{condition}/{key}/{stage}/{model}_membership.tsv",
        steps="results/privacy/{condition}/{key}/{stage}/{model}_steps.tsv",
    log:
        "results/logs/measure_privacy/{condition}/{key}/{stage}/{model}.log",
    benchmark:
        "results/benchmarks/measure_privacy/{condition}/{key}/{stage}/{model}.tsv"
    conda:
        "../../envs/diffusion.yaml"
    threads: config["job_threads"]
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=60,
    params:
        base_model=config["base_model"],
        prompts=training_prompts,
        instructions=instruction_params,
        membership=privacy_params,
        resolution=lambda wildcards: model_settings(wildcards.condition)["resolution"],
        mixed_precision=config["generate"]["mixed_precision"],
        labels=lambda wildcards: {
            "condition": wildcards.condition,
            "stage": wildcards.stage,
            "model": wildcards.model,
        },
    script:
        "../scripts/measure_privacy.py"


rule summarise_privacy:
    input:
        membership=privacy_tables("membership"),
        steps=privacy_tables("steps"),
        scores=per_seed(rules.flag_outliers.output[0]),
        references=rules.flag_references.output[0],
        slices=rules.write_slice_table.output[0],
    output:
        attacks=study("evaluate/privacy_attacks.tsv"),
        summary=study("evaluate/privacy.tsv"),
        subjects=study("evaluate/privacy_subjects.tsv"),
        steps=study("evaluate/privacy_steps.tsv"),
        threshold=study("evaluate/privacy_threshold.json"),
    log:
        study("logs/summarise_privacy.log"),
    benchmark:
        study("benchmarks/summarise_privacy.tsv")
    conda:
        "../../envs/evaluate.yaml"
    params:
        seeds=SEEDS,
        quantile=config["evaluate"]["memorization_quantile"],
        n_bootstrap=config["evaluate"]["n_bootstrap"],
        seed=config["evaluate"]["seed"],
        top=config.get("privacy", {}).get("top_subjects"),
    script:
        "../scripts/summarise_privacy.py"


rule report_privacy:
    input:
        **rules.summarise_privacy.output,
    output:
        csv=report(
            study("privacy.csv"), category="Privacy", caption="../report/privacy.rst"
        ),
        md=study("privacy.md"),
        attack=report(
            study("figures/privacy_attack.png"),
            category="Privacy",
            caption="../report/privacy.rst",
        ),
        steps=report(
            expand(
                study("figures/privacy_steps_{condition}.png"),
                condition=PRIVACY_CONDITIONS,
            ),
            category="Privacy",
            caption="../report/privacy.rst",
        ),
    log:
        study("logs/report_privacy.log"),
    benchmark:
        study("benchmarks/report_privacy.tsv")
    conda:
        "../../envs/evaluate.yaml"
    params:
        conditions=PRIVACY_CONDITIONS,
        run_label=config["run_label"],
        synthetic=config["synthetic"],
    script:
        "../scripts/report_privacy.py"
