# Config and scans sheet, validated before the DAG is built; wildcard constraints; target functions.
import os
import re
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(
    0, str(Path(workflow.basedir) / "src")
)  # brainmr without an install, too

from brainmr import GROUPS  # noqa: E402
from brainmr.cohort import scans_for_config  # noqa: E402
from brainmr.conditions import (  # noqa: E402
    active_specs,
    conditions_of,
    remedies_of,
    settings_key,
)
from brainmr.seeds import first_generator_seed, headline_seed  # noqa: E402
from brainmr.diffusion.config import (  # noqa: E402
    DemoBaseConfig,
    DreamBoothConfig,
    MembershipConfig,
)
from brainmr.evaluate.ceiling import (  # noqa: E402
    bottleneck_name,
    ceiling_condition,
    is_ceiling,
)
from brainmr.config import from_section  # noqa: E402
from brainmr.instructions import (
    InstructionConfig,
    baseline_condition,
    is_template,
)  # noqa: E402
from brainmr.evaluate.config import (  # noqa: E402
    ClassifierConfig,
    JudgeConfig,
    KdeConfig,
    fields_of,
)

validate(config, "../schemas/config.schema.yaml", set_default=True)
SCANS = scans_for_config(config).set_index("subject", drop=False)
validate(SCANS, "../schemas/scans.schema.yaml")

SUBJECTS = SCANS.index.tolist()
TRAIN = SCANS.index[SCANS.split == "train"].tolist()
TEST = SCANS.index[SCANS.split == "test"].tolist()
# Name -> Condition, in config order; null conditions (dropped by a layered file) left out
CONDITIONS = conditions_of(config)
REMEDIES = remedies_of(config)  # (baseline, remedies) or None
SEEDS = [int(s) for s in config["seeds"]]
STUDY = config["study"]
HEADLINE_SEED = headline_seed(SEEDS)  # Table 1's seed (table1.*, Figure 1)
INSTRUCTIONS = from_section(InstructionConfig, config["instructions"])
# Conditions whose prompts are templates (instructions beyond the class)
TEMPLATED = [
    n for n, c in CONDITIONS.items() if any(map(is_template, c.prompts.values()))
]
# One reconstruction-ceiling set per distinct generator bottleneck (the base's VAE at a resolution)
BOTTLENECKS = {
    bottleneck_name(r): r
    for r in sorted(
        {
            c.dreambooth_settings(config["dreambooth"])["resolution"]
            for c in CONDITIONS.values()
        }
    )
}

# Every image set a seed's CNN judges: its generated sets, the ceiling sets, the held-out reals
JUDGED_SETS = [
    f"{c}_{g}"
    for c in [*CONDITIONS, *map(ceiling_condition, BOTTLENECKS)]
    for g in GROUPS
] + ["real_test"]


wildcard_constraints:
    key=r"[0-9a-f]{8}",
    subject="|".join(map(re.escape, SUBJECTS)),
    condition="|".join(CONDITIONS),
    model="|".join(sorted({m for c in CONDITIONS.values() for m in c.models()})),
    group="|".join(GROUPS),
    seed=r"\d+",
    stage=r"seed\d+|base",
    bottleneck="|".join(BOTTLENECKS),
    acq=r"\d{4}-\d{2}-\d{2}_\d{2}_\d{2}_\d{2}\.0",
    image_id=r"I\d+",


def scan_of(wildcards):
    return SCANS.at[wildcards.subject, "path"]


def group_of(wildcards):
    return SCANS.at[wildcards.subject, "group"]


def qc_labels(wildcards):
    """The QC gallery's labels: which subject, group and split a picture shows."""
    row = SCANS.loc[wildcards.subject]
    return {"subject": wildcards.subject, "group": row["group"], "split": row["split"]}


def slices_of(subjects):
    return expand("results/slices/{subject}.npy", subject=subjects)


# The demo base is built by the workflow (dreambooth.smk); any other base is read
BUILDS_DEMO_BASE = os.path.normpath(config["base_model"]) == "results/base/demo"


def base_model_input(wildcards):
    """The demo base is built here; a local SD folder must exist; a hub id is diffusers' to fetch."""
    base = config["base_model"]
    if BUILDS_DEMO_BASE:
        return rules.pretrain_demo_base.output[0]
    if os.path.isabs(base) or base.startswith((".", "~")) or os.path.exists(base):
        return os.path.expanduser(base)
    return []


def training_prompts(wildcards):
    """Class -> prompt of the model's instance images (whole strings: prompts contain commas)."""
    return CONDITIONS[wildcards.condition].training_prompts(wildcards.model)


def prompts_of(wildcards):
    """The condition's class prompts, for its generated sets."""
    return CONDITIONS[wildcards.condition].prompts


def models_of(wildcards):
    """Class -> the DreamBooth pipeline that generates that class's images."""
    condition = CONDITIONS[wildcards.condition]
    return {
        group: os.path.join(
            model_dir(wildcards.condition, wildcards.seed, condition.model_of(group)),
            "pipeline",
        )
        for group in GROUPS
    }


def stage_params(cls):
    """Only the evaluate keys a stage reads, so that other stages' settings do not rerun it."""
    return {key: config["evaluate"][key] for key in fields_of(cls) if key != "seed"}


KDE_PARAMS = stage_params(KdeConfig) | {"seed": config["evaluate"]["seed"]}
JUDGE_PARAMS = stage_params(JudgeConfig) | {"seed": config["evaluate"]["seed"]}
CLASSIFIER_PARAMS = stage_params(ClassifierConfig)  # + the replicate seed


def model_settings(name):
    """The dreambooth keys a condition's training reads, with its overrides: settings that do
    not change the model (checkpoint cadence) stay out."""
    settings = CONDITIONS[name].dreambooth_settings(config["dreambooth"])
    return {key: settings[key] for key in fields_of(DreamBoothConfig) if key != "seed"}


def dreambooth_params(wildcards):
    """A model's training settings and its replicate seed (for the folder's key only)."""
    require_key(wildcards, MODEL_KEYS)
    return model_settings(wildcards.condition) | {"seed": int(wildcards.seed)}


def instruction_settings(name):
    """How a templated condition's prompts are written (empty for fixed prompts)."""
    return config["instructions"] if name in TEMPLATED else {}


def instruction_params(wildcards):
    return instruction_settings(wildcards.condition)


DEMO_BASE_PARAMS = {key: config["demo_base"][key] for key in fields_of(DemoBaseConfig)}
# Each condition's models and image sets live in a folder named by the settings that make them
# (brainmr.conditions.settings_key): equal settings share the work across runs and studies,
# different ones never overwrite it.
MODEL_KEYS = {
    name: settings_key(
        {
            "base_model": config["base_model"],
            "demo_base": DEMO_BASE_PARAMS if BUILDS_DEMO_BASE else {},
            "dreambooth": model_settings(name),
            "prompts": {m: c.training_prompts(m) for m in c.models()},
            "instructions": instruction_settings(name),
        }
    )
    for name, c in CONDITIONS.items()
}
SET_KEYS = {
    name: settings_key(
        {
            "model": MODEL_KEYS[name],
            "prompts": c.prompts,
            "generate": {g: c.generate_settings(config["generate"], g) for g in GROUPS},
            "instructions": instruction_settings(name),
        }
    )
    for name, c in CONDITIONS.items()
}


def require_key(wildcards, keys):
    """A keyed folder is made only under its condition's current key."""
    if wildcards.key != keys[wildcards.condition]:
        raise ValueError(
            f"{wildcards.condition}: folder key {wildcards.key} is not this config's "
            f"({keys[wildcards.condition]}); ask for the targets, not an old folder"
        )


def model_dir(condition, seed, model):
    return f"results/models/{condition}/{MODEL_KEYS[condition]}/seed{seed}/{model}"


def set_dir(condition, seed, group):
    return f"results/generated/{condition}/{SET_KEYS[condition]}/seed{seed}/{group}"


# The privacy study (section privacy:, absent = off): which conditions' models are attacked
PRIVACY = config.get("privacy")
PRIVACY_CONDITIONS = (
    list(PRIVACY.get("conditions") or CONDITIONS) if PRIVACY is not None else []
)
unknown = sorted(set(PRIVACY_CONDITIONS) - set(CONDITIONS))
if unknown:
    raise ValueError(f"privacy.conditions: {unknown} are not conditions of this config")


def privacy_params(wildcards):
    """How a slice's denoising loss is measured (the model's folder key checked)."""
    require_key(wildcards, MODEL_KEYS)
    return {key: PRIVACY[key] for key in fields_of(MembershipConfig)}


def privacy_model(wildcards):
    """The pipeline a privacy job attacks: a replicate's DreamBooth model, or the base."""
    if wildcards.stage == "base":
        return base_model_input(wildcards)
    seed = wildcards.stage.removeprefix("seed")
    return os.path.join(
        model_dir(wildcards.condition, seed, wildcards.model), "pipeline"
    )


def privacy_validation(wildcards):
    """A trained model's validation grids (the base has none)."""
    if wildcards.stage == "base":
        return []
    seed = wildcards.stage.removeprefix("seed")
    return os.path.join(
        model_dir(wildcards.condition, seed, wildcards.model), "validation"
    )


def privacy_tables(kind):
    """Every attacked model's table of ``kind`` (membership, steps): seeds, then the base."""
    return [
        f"results/privacy/{c}/{MODEL_KEYS[c]}/{stage}/{m}_{kind}.tsv"
        for c in PRIVACY_CONDITIONS
        for m in CONDITIONS[c].models()
        for stage in [*(f"seed{s}" for s in SEEDS), "base"]
    ]


def study(path):
    """A path in this run's own folder: its tables, figures, report and what only it reads."""
    return f"results/{STUDY}/{path}"


INSTRUCTION_BASELINE = (
    baseline_condition(list(CONDITIONS), TEMPLATED, INSTRUCTIONS.baseline)
    if TEMPLATED
    else None
)


def instruction_inputs(wildcards):
    """Class -> image folders of the templated condition (AD, CN) and of the baseline."""
    return {
        f"{role}_{g}": set_dir(c, wildcards.seed, g)
        for role, c in (
            ("instructed", wildcards.condition),
            ("baseline", INSTRUCTION_BASELINE),
        )
        for g in GROUPS
    }


def requests_of(wildcards):
    """A templated condition's requests table for the seed (rule write_requests); none else."""
    if wildcards.condition not in TEMPLATED:
        return []
    return (
        f"results/requests/{wildcards.condition}/{SET_KEYS[wildcards.condition]}/"
        f"seed{wildcards.seed}.tsv"
    )


def provenance(wildcards):
    """How the numbers were obtained, for table1_vs_paper.md."""
    return {
        "data": config["cohort"]["source"],
        "synthetic": config["synthetic"],
        "base_model": config["base_model"],
        "replicate seeds": SEEDS,
        "dreambooth_steps": config["dreambooth"]["max_train_steps"],
        "resolution": config["dreambooth"]["resolution"],
        "n_images": config["generate"]["n_images"],
        "scheduler": config["generate"]["scheduler"],
        "steps": config["generate"]["num_inference_steps"],
        "guidance_scale": config["generate"]["guidance_scale"],
        "subjects": {g: int((SCANS.group == g).sum()) for g in GROUPS},
    }


def per_seed(pattern, **wildcards):
    return expand(pattern, seed=SEEDS, allow_missing=True, **wildcards)


def score_file(condition, seed, group):
    """The seed-free scores of a generated set (rule score_generated)."""
    return f"results/evaluate/scores/{condition}/{SET_KEYS[condition]}/seed{seed}_{group}.tsv"


def score_tables(wildcards):
    """The seed-free score tables of one replicate seed's generated sets."""
    return [score_file(c, wildcards.seed, g) for c in CONDITIONS for g in GROUPS]


def seed_free_tables(wildcards):
    """The seed-free score tables of every set a seed's CNN judges, in JUDGED_SETS order (a
    generated set's is its seed's; the ceiling sets' and the held-out reals' are shared).
    """
    generated = {
        f"{c}_{g}": score_file(c, wildcards.seed, g) for c in CONDITIONS for g in GROUPS
    }
    return [
        generated.get(name, f"results/evaluate/scores/{name}.tsv")
        for name in JUDGED_SETS
    ]


def cnn_tables(wildcards):
    return expand(
        study("evaluate/seed{seed}/cnn/{set}.tsv"), seed=wildcards.seed, set=JUDGED_SETS
    )


def cnn_features(wildcards):
    return expand(
        study("evaluate/seed{seed}/cnn/{set}.npy"), seed=wildcards.seed, set=JUDGED_SETS
    )


def generated_sets():
    """(folder, replicate seed) of every generated set, conditions in config order."""
    return [(set_dir(c, s, g), s) for c in CONDITIONS for s in SEEDS for g in GROUPS]


def all_targets():
    return (
        [
            expand("results/qc/{subject}.png", subject=SUBJECTS),
            *map(
                study,
                [
                    "table1.csv",
                    "table1.md",
                    "table1_vs_paper.md",
                    "table1_summary.csv",
                    "table1_summary.md",
                    "metrics.csv",
                    "evaluate/kde_sensitivity.csv",
                    "figure1.png",
                    "figures/forest.png",
                    "figures/likelihood_histograms.png",
                    "figures/memorization.png",
                    "morphometry.csv",
                    "morphometry.md",
                    "figures/morphometry.png",
                ],
            ),
        ]
        + (
            [
                study("instructions.csv"),
                study("instructions.md"),
                *expand(study("figures/instructions_seed{seed}.png"), seed=SEEDS),
            ]
            if TEMPLATED
            else []
        )
        + (
            [
                study("privacy.csv"),
                study("privacy.md"),
                study("figures/privacy_attack.png"),
                *expand(
                    study("figures/privacy_steps_{condition}.png"),
                    condition=PRIVACY_CONDITIONS,
                ),
            ]
            if PRIVACY is not None
            else []
        )
        + (
            [
                study("remedies.csv"),
                study("remedies.md"),
                study("figures/remedies_forest.png"),
            ]
            if REMEDIES
            else []
        )
    )


def generation_params(wildcards):
    """Class -> generate settings (with the condition's overrides) and the set's first generator
    seed (brainmr.seeds)."""
    require_key(wildcards, SET_KEYS)
    condition = CONDITIONS[wildcards.condition]
    seed = {"seed": first_generator_seed(int(wildcards.seed))}
    return {
        group: condition.generate_settings(config["generate"], group) | seed
        for group in GROUPS
    }
