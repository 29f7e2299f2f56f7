# N images per (condition, class, replicate seed) from that DreamBooth model, one generator seed
# per image.


rule generate_images:
    input:
        model=rules.train_dreambooth.output.model,
    output:
        images=directory("results/generated/{condition}/seed{seed}/{group}"),
    log:
        "results/logs/generate_images/{condition}/seed{seed}_{group}.log",
    benchmark:
        "results/benchmarks/generate_images/{condition}/seed{seed}_{group}.tsv"
    conda:
        "../../envs/diffusion.yaml"
    threads: config["job_threads"]
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    params:
        prompt=prompt_of,
        generate=generation_params,
    script:
        "../scripts/generate_images.py"
