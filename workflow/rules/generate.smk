# N images per (condition, class, replicate seed) from that DreamBooth model, one generator seed
# per image. One job per model: it is loaded once for both classes.


rule generate_images:
    input:
        model=rules.train_dreambooth.output.model,
    output:
        AD=directory("results/generated/{condition}/seed{seed}/AD"),
        CN=directory("results/generated/{condition}/seed{seed}/CN"),
    log:
        "results/logs/generate_images/{condition}/seed{seed}.log",
    benchmark:
        "results/benchmarks/generate_images/{condition}/seed{seed}.tsv"
    conda:
        "../../envs/diffusion.yaml"
    threads: config["job_threads"]
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    params:
        prompts=prompts_of,
        generate=generation_params,
    script:
        "../scripts/generate_images.py"
