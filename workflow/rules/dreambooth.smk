# The demo base (built from configs, pretrained on a separate synthetic corpus) and one DreamBooth
# model per prompt condition and replicate seed, trained on the train slices of both classes with
# their prompts (model "shared"), or one per class with per_class_models (models "AD", "CN").


rule write_pretrain_corpus:
    output:
        temp("results/base/demo_corpus.npz"),
    log:
        "results/logs/write_pretrain_corpus.log",
    benchmark:
        "results/benchmarks/write_pretrain_corpus.tsv"
    priority: 10
    conda:
        "../../envs/diffusion.yaml"
    params:
        demo_base=DEMO_BASE_PARAMS,
    script:
        "../scripts/write_pretrain_corpus.py"


rule build_demo_base:
    output:
        temp(directory("results/base/demo_untrained")),
    log:
        "results/logs/build_demo_base.log",
    benchmark:
        "results/benchmarks/build_demo_base.tsv"
    priority: 10
    conda:
        "../../envs/diffusion.yaml"
    params:
        demo_base=DEMO_BASE_PARAMS,
    script:
        "../scripts/build_demo_base.py"


rule pretrain_demo_base:
    input:
        base=rules.build_demo_base.output[0],
        corpus=rules.write_pretrain_corpus.output[0],
    output:
        directory("results/base/demo"),
    log:
        "results/logs/pretrain_demo_base.log",
    benchmark:
        "results/benchmarks/pretrain_demo_base.tsv"
    # first: the base pretrains on one core while the other synthesizes and preprocesses
    priority: 10
    conda:
        "../../envs/diffusion.yaml"
    threads: config["job_threads"]
    resources:
        # it uses a GPU whenever torch sees one, but asks for one only where config says so
        gpu=1 if config["demo_base"]["gpu"] else 0,
        mem_mb=8000,
        runtime=60,
    params:
        demo_base=DEMO_BASE_PARAMS,
    script:
        "../scripts/pretrain_demo_base.py"


rule train_dreambooth:
    input:
        base=base_model_input,
        slices=rules.write_slice_table.output[0],
    output:
        model=directory("results/models/{condition}/{key}/seed{seed}/{model}/pipeline"),
        # the grids drawn while it trained (fixed seeds): the privacy study's step curve
        validation_grids=directory(
            "results/models/{condition}/{key}/seed{seed}/{model}/validation"
        ),
        loss="results/models/{condition}/{key}/seed{seed}/{model}/loss.tsv",
        loss_plot=report(
            "results/models/{condition}/{key}/seed{seed}/{model}/loss.png",
            category="DreamBooth",
            subcategory="{condition} ({key}), seed {seed}, {model}",
            caption="../report/loss.rst",
        ),
        validation=report(
            "results/models/{condition}/{key}/seed{seed}/{model}/validation.png",
            category="DreamBooth",
            subcategory="{condition} ({key}), seed {seed}, {model}",
            caption="../report/validation.rst",
        ),
    log:
        "results/logs/train_dreambooth/{condition}/{key}/seed{seed}/{model}.log",
    benchmark:
        "results/benchmarks/train_dreambooth/{condition}/{key}/seed{seed}/{model}.tsv"
    conda:
        "../../envs/diffusion.yaml"
    threads: config["job_threads"]
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=480,
    params:
        base_model=config["base_model"],
        prompts=training_prompts,
        dreambooth=dreambooth_params,
        instructions=instruction_params,
        work_dir="results/models/{condition}/{key}/seed{seed}/{model}",
    script:
        "../scripts/train_dreambooth.py"
