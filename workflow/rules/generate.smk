# N images per (condition, class) from the condition's DreamBooth model, one seed per image.


rule generate_images:
    input:
        model=rules.train_dreambooth.output.model,
    output:
        images=directory("results/generated/{condition}/{group}"),
    log:
        "results/logs/generate_images/{condition}_{group}.log",
    benchmark:
        "results/benchmarks/generate_images/{condition}_{group}.tsv"
    conda:
        "../../envs/diffusion.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    params:
        prompt=prompt_of,
        generate=config["generate"],
        image_size=config["preprocess"]["slice_size"],
    script:
        "../scripts/generate_images.py"
