# The judges, fitted on real train slices: one KDE (PCA + Gaussian KDE per class) and one CNN per
# replicate seed. Per image set (every generated set, the held-out reals through each generator
# bottleneck (the ceiling sets), the held-out reals), once: the seed-free scores; per set and
# seed's CNN: P(AD) and features in one pass. Then per seed: outliers, set metrics; the summary
# across seeds. Reporting (report.smk) only formats.


rule fit_kde:
    input:
        slices=rules.write_slice_table.output[0],
    output:
        model="results/evaluate/kde.joblib",
        summary="results/evaluate/kde.json",
    log:
        "results/logs/fit_kde.log",
    benchmark:
        "results/benchmarks/fit_kde.tsv"
    conda:
        "../../envs/evaluate.yaml"
    params:
        kde=KDE_PARAMS,
    script:
        "../scripts/fit_kde.py"


rule train_classifier:
    input:
        slices=rules.write_slice_table.output[0],
    output:
        model="results/evaluate/seed{seed}/classifier/model.pt",
        metrics="results/evaluate/seed{seed}/classifier/metrics.json",
        roc=report(
            "results/evaluate/seed{seed}/classifier/roc.png",
            category="CNN",
            subcategory="seed {seed}",
            caption="../report/roc.rst",
        ),
        reliability=report(
            "results/evaluate/seed{seed}/classifier/reliability.png",
            category="CNN",
            subcategory="seed {seed}",
            caption="../report/reliability.rst",
        ),
        predictions="results/evaluate/seed{seed}/classifier/test_predictions.tsv",
    log:
        "results/logs/train_classifier/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_classifier/seed{seed}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    threads: config["job_threads"]
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        classifier=lambda wildcards: CLASSIFIER_PARAMS | {"seed": int(wildcards.seed)},
    script:
        "../scripts/train_classifier.py"


rule score_generated:
    input:
        images="results/generated/{condition}/{key}/seed{seed}/{group}",
        kde=rules.fit_kde.output.model,
        slices=rules.write_slice_table.output[0],
    output:
        # kept (not temp): a changed outlier rule then reruns without rescoring every image
        "results/evaluate/scores/{condition}/{key}/seed{seed}_{group}.tsv",
    log:
        "results/logs/score_generated/{condition}/{key}/seed{seed}_{group}.log",
    benchmark:
        "results/benchmarks/score_generated/{condition}/{key}/seed{seed}_{group}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/score_images.py"


rule make_ceiling_images:
    input:
        base=base_model_input,
        slices=rules.write_slice_table.output[0],
    output:
        AD=directory("results/ceiling/{bottleneck}/AD"),
        CN=directory("results/ceiling/{bottleneck}/CN"),
    log:
        "results/logs/make_ceiling_images/{bottleneck}.log",
    benchmark:
        "results/benchmarks/make_ceiling_images/{bottleneck}.tsv"
    conda:
        "../../envs/diffusion.yaml"
    threads: config["job_threads"]
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=30,
    params:
        base_model=config["base_model"],
        resolution=lambda wildcards: BOTTLENECKS[wildcards.bottleneck],
        mixed_precision=config["generate"]["mixed_precision"],
    script:
        "../scripts/make_ceiling_images.py"


use rule score_generated as score_ceiling with:
    input:
        images="results/ceiling/{bottleneck}/{group}",
        kde=rules.fit_kde.output.model,
        slices=rules.write_slice_table.output[0],
    output:
        "results/evaluate/scores/ceiling_{bottleneck}_{group}.tsv",
    log:
        "results/logs/score_ceiling/{bottleneck}_{group}.log",
    benchmark:
        "results/benchmarks/score_ceiling/{bottleneck}_{group}.tsv"


rule measure_real_morphometry:
    input:
        slices=rules.write_slice_table.output[0],
    output:
        "results/evaluate/morphometry_reals.tsv",
    log:
        "results/logs/measure_real_morphometry.log",
    benchmark:
        "results/benchmarks/measure_real_morphometry.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/measure_real_morphometry.py"


rule score_real:
    input:
        kde=rules.fit_kde.output.model,
        slices=rules.write_slice_table.output[0],
    output:
        "results/evaluate/scores/real_test.tsv",
    log:
        "results/logs/score_real.log",
    benchmark:
        "results/benchmarks/score_real.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/score_real.py"


rule judge_images:
    input:
        scores=seed_free_tables,
        classifier=rules.train_classifier.output.model,
    output:
        # one job per seed: the CNN is loaded once and judges every set, each in one pass
        tables=expand(study("evaluate/seed{{seed}}/cnn/{set}.tsv"), set=JUDGED_SETS),
        features=expand(study("evaluate/seed{{seed}}/cnn/{set}.npy"), set=JUDGED_SETS),
    log:
        study("logs/judge_images/seed{seed}.log"),
    benchmark:
        study("benchmarks/judge_images/seed{seed}.tsv")
    conda:
        "../../envs/evaluate.yaml"
    threads: config["job_threads"]
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=30,
    params:
        batch_size=config["evaluate"]["cnn_batch_size"],
    script:
        "../scripts/judge_images.py"


rule flag_references:
    input:
        real=rules.score_real.output[0],
        ceilings=expand(
            rules.score_ceiling.output[0], bottleneck=BOTTLENECKS, group=GROUPS
        ),
    output:
        # the held-out reals and the ceiling sets, flagged once (the threshold is the reals')
        "results/evaluate/scores/references.tsv",
    log:
        "results/logs/flag_references.log",
    benchmark:
        "results/benchmarks/flag_references.tsv"
    conda:
        "../../envs/evaluate.yaml"
    params:
        mad_k=config["evaluate"]["outlier_mad_k"],
    script:
        "../scripts/flag_references.py"


rule flag_outliers:
    input:
        generated=score_tables,
        references=rules.flag_references.output[0],
        cnn=cnn_tables,
    output:
        study("evaluate/seed{seed}/scores.tsv"),
    log:
        study("logs/flag_outliers/seed{seed}.log"),
    benchmark:
        study("benchmarks/flag_outliers/seed{seed}.tsv")
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/flag_outliers.py"


rule measure_sets:
    input:
        scores=rules.flag_outliers.output[0],
        cnn=cnn_tables,
        features=cnn_features,
        classifier=rules.train_classifier.output.model,
        classifier_metrics=rules.train_classifier.output.metrics,
        slices=rules.write_slice_table.output[0],
    output:
        study("evaluate/seed{seed}/set_metrics.tsv"),
    log:
        study("logs/measure_sets/seed{seed}.log"),
    benchmark:
        study("benchmarks/measure_sets/seed{seed}.tsv")
    conda:
        "../../envs/evaluate.yaml"
    params:
        judge=JUDGE_PARAMS,
    script:
        "../scripts/measure_sets.py"


rule measure_kde_sensitivity:
    input:
        images=[folder for folder, _ in generated_sets()],
        slices=rules.write_slice_table.output[0],
    output:
        report(
            study("evaluate/kde_sensitivity.csv"),
            category="Beyond the paper",
            caption="../report/kde_sensitivity.rst",
        ),
    log:
        study("logs/measure_kde_sensitivity.log"),
    benchmark:
        study("benchmarks/measure_kde_sensitivity.tsv")
    conda:
        "../../envs/evaluate.yaml"
    params:
        kde=KDE_PARAMS,
        mad_k=config["evaluate"]["outlier_mad_k"],
        seeds=[seed for _, seed in generated_sets()],
    script:
        "../scripts/measure_kde_sensitivity.py"


rule summarise_replicates:
    input:
        scores=per_seed(rules.flag_outliers.output[0]),
        references=rules.flag_references.output[0],
        set_metrics=per_seed(rules.measure_sets.output[0]),
        cnn=per_seed(rules.train_classifier.output.metrics),
        reals=rules.measure_real_morphometry.output[0],
    output:
        by_seed=study("evaluate/table1_by_seed.tsv"),
        summary=study("evaluate/table1_summary.tsv"),
        comparisons=study("evaluate/comparisons.tsv"),
        verdict=study("evaluate/verdict.json"),
        morphometry=study("evaluate/morphometry.tsv"),
        findings=study("evaluate/findings.json"),
    log:
        study("logs/summarise_replicates.log"),
    benchmark:
        study("benchmarks/summarise_replicates.tsv")
    conda:
        "../../envs/evaluate.yaml"
    params:
        seeds=SEEDS,
        conditions=list(CONDITIONS),
        n_bootstrap=config["evaluate"]["n_bootstrap"],
    script:
        "../scripts/summarise_replicates.py"


rule summarise_remedies:
    input:
        by_seed=rules.summarise_replicates.output.by_seed,
    output:
        study("evaluate/remedies.tsv"),
    log:
        study("logs/summarise_remedies.log"),
    benchmark:
        study("benchmarks/summarise_remedies.tsv")
    conda:
        "../../envs/evaluate.yaml"
    params:
        baseline=REMEDIES[0] if REMEDIES else None,
        remedies=REMEDIES[1] if REMEDIES else [],
    script:
        "../scripts/summarise_remedies.py"
