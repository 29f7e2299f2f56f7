# Tables and figures, formatted from what evaluate.smk computed (nothing is computed here).


rule report_tables:
    input:
        by_seed=rules.summarise_replicates.output.by_seed,
        summary=rules.summarise_replicates.output.summary,
        comparisons=rules.summarise_replicates.output.comparisons,
        verdict=rules.summarise_replicates.output.verdict,
        findings=rules.summarise_replicates.output.findings,
        set_metrics=per_seed(rules.measure_sets.output[0]),
        sensitivity=rules.measure_kde_sensitivity.output[0],
        kde=rules.fit_kde.output.summary,
    output:
        csv=report(
            study("table1.csv"), category="Table 1", caption="../report/table1.rst"
        ),
        md=study("table1.md"),
        html=report(
            study("table1.html"),
            category="Table 1",
            caption="../report/table1.rst",
        ),
        vs_paper=study("table1_vs_paper.md"),
        summary_csv=report(
            study("table1_summary.csv"),
            category="Table 1",
            caption="../report/table1_summary.rst",
        ),
        summary_md=study("table1_summary.md"),
        summary_html=report(
            study("table1_summary.html"),
            category="Table 1",
            caption="../report/table1_summary.rst",
        ),
        metrics=report(
            study("metrics.csv"),
            category="Beyond the paper",
            caption="../report/metrics.rst",
        ),
    log:
        study("logs/report_tables.log"),
    benchmark:
        study("benchmarks/report_tables.tsv")
    conda:
        "../../envs/evaluate.yaml"
    params:
        conditions=active_specs(config),
        run_label=config["run_label"],
        synthetic=config["synthetic"],
        provenance=provenance,
        mad_k=config["evaluate"]["outlier_mad_k"],
    script:
        "../scripts/report_tables.py"


rule draw_figures:
    input:
        scores=expand(rules.flag_outliers.output[0], seed=HEADLINE_SEED),
        set_metrics=expand(rules.measure_sets.output[0], seed=HEADLINE_SEED),
        summary=rules.summarise_replicates.output.summary,
        by_seed=rules.summarise_replicates.output.by_seed,
    output:
        figure1=report(
            study("figure1.png"), category="Figure 1", caption="../report/figure1.rst"
        ),
        forest=report(
            study("figures/forest.png"),
            category="Table 1",
            caption="../report/forest.rst",
        ),
        histograms=report(
            study("figures/likelihood_histograms.png"),
            category="Figure 1",
            caption="../report/histograms.rst",
        ),
        memorization=report(
            study("figures/memorization.png"),
            category="Beyond the paper",
            caption="../report/memorization.rst",
        ),
    log:
        study("logs/draw_figures.log"),
    benchmark:
        study("benchmarks/draw_figures.tsv")
    conda:
        "../../envs/evaluate.yaml"
    params:
        conditions=active_specs(config),
        run_label=config["run_label"],
        synthetic=config["synthetic"],
    script:
        "../scripts/draw_figures.py"


rule report_morphometry:
    input:
        morphometry=rules.summarise_replicates.output.morphometry,
        references=rules.flag_references.output[0],
        scores=per_seed(rules.flag_outliers.output[0]),
    output:
        csv=report(
            study("morphometry.csv"),
            category="Table 1",
            caption="../report/morphometry.rst",
        ),
        md=study("morphometry.md"),
        figure=report(
            study("figures/morphometry.png"),
            category="Table 1",
            caption="../report/morphometry.rst",
        ),
    log:
        study("logs/report_morphometry.log"),
    benchmark:
        study("benchmarks/report_morphometry.tsv")
    conda:
        "../../envs/evaluate.yaml"
    params:
        conditions=active_specs(config),
        run_label=config["run_label"],
        synthetic=config["synthetic"],
    script:
        "../scripts/report_morphometry.py"


rule report_remedies:
    input:
        rules.summarise_remedies.output[0],
    output:
        csv=report(
            study("remedies.csv"),
            category="Remedies",
            caption="../report/remedies.rst",
        ),
        md=study("remedies.md"),
        forest=report(
            study("figures/remedies_forest.png"),
            category="Remedies",
            caption="../report/remedies_forest.rst",
        ),
    log:
        study("logs/report_remedies.log"),
    benchmark:
        study("benchmarks/report_remedies.tsv")
    conda:
        "../../envs/evaluate.yaml"
    params:
        run_label=config["run_label"],
        synthetic=config["synthetic"],
    script:
        "../scripts/report_remedies.py"
