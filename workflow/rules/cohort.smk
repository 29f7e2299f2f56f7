# Cohort: the demo's collection CSV and scans (ADNI layout), and the scans sheet for both sources.


rule write_demo_collection:
    output:
        "results/demo/ADNI_demo_collection.csv",
    log:
        "results/logs/write_demo_collection.log",
    benchmark:
        "results/benchmarks/write_demo_collection.tsv"
    conda:
        "../../envs/preprocess.yaml"
    params:
        demo=config.get("demo", {}),
    script:
        "../scripts/write_demo_collection.py"


rule synthesize_demo_scan:
    output:
        "results/demo/ADNI/{subject}/MPRAGE/{acq}/{image_id}/ADNI_{subject}_MR_MPRAGE_{image_id}.nii.gz",
    log:
        "results/logs/synthesize_demo_scan/{subject}/{acq}/{image_id}.log",
    benchmark:
        "results/benchmarks/synthesize_demo_scan/{subject}/{acq}/{image_id}.tsv"
    group:
        "subject"
    conda:
        "../../envs/preprocess.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        demo=config.get("demo", {}),
        group=group_of,
        # the anatomy depends on the subject's age and sex, as its collection CSV gives them
        age=lambda wildcards: float(SCANS.at[wildcards.subject, "age"]),
        sex=lambda wildcards: str(SCANS.at[wildcards.subject, "sex"]),
    script:
        "../scripts/synthesize_demo_scan.py"


rule write_scans_sheet:
    input:
        csv=config["cohort"]["collection_csv"],
        scans=SCANS.path.tolist(),
    output:
        "results/cohort/scans.tsv",
    log:
        "results/logs/write_scans_sheet.log",
    benchmark:
        "results/benchmarks/write_scans_sheet.tsv"
    conda:
        "../../envs/preprocess.yaml"
    params:
        cohort=config["cohort"],
    script:
        "../scripts/write_scans_sheet.py"
