# N images per (condition, class, replicate seed) from that condition's DreamBooth model (its
# class's model with per_class_models), one generator seed per image. One job per (condition,
# seed): a model shared by both classes is loaded once.


rule generate_images:
    input:
        unpack(models_of),
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
        requests=instruction_requests,
    script:
        "../scripts/generate_images.py"
