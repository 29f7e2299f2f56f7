# Per subject: skull strip -> rigid to MNI152 (1 mm) -> centre coronal slice 160x160 -> QC picture;
# then the slice table (subject, group, split, path, age, sex) that every later rule reads.


rule preprocess_scan:
    input:
        scan=scan_of,
    output:
        slice="results/slices/{subject}.npy",
        png="results/slices/{subject}.png",
        qc=report(
            "results/qc/{subject}.png",
            category="QC",
            caption="../report/qc.rst",
            labels=qc_labels,
        ),
        transform="results/transforms/{subject}_to_MNI152.tfm",
    log:
        "results/logs/preprocess_scan/{subject}.log",
    benchmark:
        "results/benchmarks/preprocess_scan/{subject}.tsv"
    group:
        "subject"
    conda:
        "../../envs/preprocess.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        preprocess=config["preprocess"],
    script:
        "../scripts/preprocess_scan.py"


rule write_slice_table:
    input:
        scans=rules.write_scans_sheet.output[0],
        slices=slices_of(SUBJECTS),
    output:
        "results/cohort/slices.tsv",
    log:
        "results/logs/write_slice_table.log",
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/write_slice_table.py"
