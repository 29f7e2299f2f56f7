# N images per (condition, class, replicate seed) from that condition's DreamBooth model (its
# class's model with per_class_models), one generator seed per image. One job per (condition,
# seed): a model shared by both classes is loaded once. A templated condition's requests (age and
# sex per image, drawn from the held-out reals) are written first, per seed.


rule write_requests:
    input:
        slices=rules.write_slice_table.output[0],
    output:
        "results/requests/{condition}/{key}/seed{seed}.tsv",
    log:
        "results/logs/write_requests/{condition}/{key}/seed{seed}.log",
    conda:
        "../../envs/evaluate.yaml"
    params:
        prompts=prompts_of,
        n_images=config["generate"]["n_images"],
        instructions=config["instructions"],
    script:
        "../scripts/write_requests.py"


rule generate_images:
    input:
        unpack(models_of),
        requests=requests_of,
    output:
        AD=directory("results/generated/{condition}/{key}/seed{seed}/AD"),
        CN=directory("results/generated/{condition}/{key}/seed{seed}/CN"),
    log:
        "results/logs/generate_images/{condition}/{key}/seed{seed}.log",
    benchmark:
        "results/benchmarks/generate_images/{condition}/{key}/seed{seed}.tsv"
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
