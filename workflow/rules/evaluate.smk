# KDE (PCA + Gaussian KDE per class) and a CNN, both fitted on real train slices; per-image scores
# of every generated set and of the held-out real slices; Table 1, Figure 1 and the extra checks.


rule fit_kde:
    input:
        scans=rules.scans_sheet.output[0],
        slices=slices_of(TRAIN),
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
        evaluate=config["evaluate"],
    script:
        "../scripts/fit_kde.py"


rule train_classifier:
    input:
        scans=rules.scans_sheet.output[0],
        slices=slices_of(SUBJECTS),
    output:
        model="results/evaluate/classifier/model.pt",
        metrics="results/evaluate/classifier/metrics.json",
        roc=report(
            "results/evaluate/classifier/roc.png",
            category="CNN",
            caption="../report/roc.rst",
        ),
        predictions="results/evaluate/classifier/test_predictions.tsv",
    log:
        "results/logs/train_classifier.log",
    benchmark:
        "results/benchmarks/train_classifier.tsv"
    conda:
        "../../envs/evaluate.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        evaluate=config["evaluate"],
    script:
        "../scripts/train_classifier.py"


rule score_generated:
    input:
        images=rules.generate_images.output.images,
        kde=rules.fit_kde.output.model,
        classifier=rules.train_classifier.output.model,
        scans=rules.scans_sheet.output[0],
        slices=slices_of(TRAIN),
    output:
        "results/evaluate/scores/{condition}_{group}.tsv",
    log:
        "results/logs/score_generated/{condition}_{group}.log",
    benchmark:
        "results/benchmarks/score_generated/{condition}_{group}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    params:
        evaluate=config["evaluate"],
    script:
        "../scripts/score_generated.py"


rule score_real:
    input:
        kde=rules.fit_kde.output.model,
        classifier=rules.train_classifier.output.model,
        scans=rules.scans_sheet.output[0],
        slices=slices_of(SUBJECTS),
    output:
        "results/evaluate/scores/real_test.tsv",
    log:
        "results/logs/score_real.log",
    benchmark:
        "results/benchmarks/score_real.tsv"
    conda:
        "../../envs/evaluate.yaml"
    params:
        evaluate=config["evaluate"],
    script:
        "../scripts/score_real.py"


rule table1:
    input:
        generated=score_tables(),
        real=rules.score_real.output[0],
        kde=rules.fit_kde.output.summary,
        metrics=rules.train_classifier.output.metrics,
        classifier=rules.train_classifier.output.model,
        scans=rules.scans_sheet.output[0],
        slices=slices_of(SUBJECTS),
    output:
        csv=report(
            "results/table1.csv", category="Table 1", caption="../report/table1.rst"
        ),
        md="results/table1.md",
        vs_paper="results/table1_vs_paper.md",
        metrics=report(
            "results/metrics.csv",
            category="Beyond the paper",
            caption="../report/metrics.rst",
        ),
        outliers="results/evaluate/outliers.tsv",
    log:
        "results/logs/table1.log",
    benchmark:
        "results/benchmarks/table1.tsv"
    conda:
        "../../envs/evaluate.yaml"
    params:
        conditions=config["conditions"],
        evaluate=config["evaluate"],
        run_label=config["run_label"],
        synthetic=config["synthetic"],
        provenance=provenance,
    script:
        "../scripts/table1.py"


rule figures:
    input:
        generated=score_tables(),
        real=rules.score_real.output[0],
        outliers=rules.table1.output.outliers,
    output:
        figure1=report(
            "results/figure1.png", category="Figure 1", caption="../report/figure1.rst"
        ),
        histograms=report(
            "results/figures/likelihood_histograms.png",
            category="Figure 1",
            caption="../report/histograms.rst",
        ),
        memorization=report(
            "results/figures/memorization.png",
            category="Beyond the paper",
            caption="../report/memorization.rst",
        ),
    log:
        "results/logs/figures.log",
    benchmark:
        "results/benchmarks/figures.tsv"
    conda:
        "../../envs/evaluate.yaml"
    params:
        conditions=config["conditions"],
        evaluate=config["evaluate"],
        run_label=config["run_label"],
        synthetic=config["synthetic"],
    script:
        "../scripts/figures.py"
