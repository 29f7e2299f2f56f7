# Per subject: skull strip -> rigid to MNI152 (1 mm) -> centre coronal slice 160x160 -> QC picture.


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
