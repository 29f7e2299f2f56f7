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
from brainmr.diffusion import DemoBaseConfig, DreamBoothConfig  # noqa: E402
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
CONDITIONS = list(config["conditions"])
SEEDS = [int(s) for s in config["seeds"]]


wildcard_constraints:
    subject="|".join(map(re.escape, SUBJECTS)),
    condition="|".join(CONDITIONS),
    group="|".join(GROUPS),
    seed=r"\d+",
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


def base_model_input(wildcards):
    """The demo base is built here; a local SD folder must exist; a hub id is diffusers' to fetch."""
    base = config["base_model"]
    if os.path.normpath(base) == "results/base/demo":
        return rules.pretrain_demo_base.output[0]
    if os.path.isabs(base) or base.startswith((".", "~")) or os.path.exists(base):
        return os.path.expanduser(base)
    return []


def prompts_of(wildcards):
    """The condition's class prompts (whole strings: prompts contain commas)."""
    return {group: config["conditions"][wildcards.condition][group] for group in GROUPS}


def prompt_of(wildcards):
    return config["conditions"][wildcards.condition][wildcards.group]


def stage_params(cls):
    """Only the evaluate keys a stage reads, so that other stages' settings do not rerun it."""
    return {key: config["evaluate"][key] for key in fields_of(cls) if key != "seed"}


KDE_PARAMS = stage_params(KdeConfig) | {"seed": config["evaluate"]["seed"]}
JUDGE_PARAMS = stage_params(JudgeConfig) | {"seed": config["evaluate"]["seed"]}
CLASSIFIER_PARAMS = stage_params(ClassifierConfig)  # + the replicate seed


def replicate(section, cls):
    """The keys of a config section that ``cls`` (a stage config) reads, with the job's
    replicate seed: settings that do not change the output (checkpoint cadence) stay out.
    """

    def params(wildcards):
        keys = [key for key in fields_of(cls) if key != "seed"]
        return {key: config[section][key] for key in keys} | {
            "seed": int(wildcards.seed)
        }

    return params


DEMO_BASE_PARAMS = {key: config["demo_base"][key] for key in fields_of(DemoBaseConfig)}


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


def score_tables(wildcards):
    """The generated sets' score tables of one replicate seed."""
    return expand(
        "results/evaluate/seed{seed}/scores/{condition}_{group}.tsv",
        seed=wildcards.seed,
        condition=CONDITIONS,
        group=GROUPS,
    )


def image_dirs():
    return expand(
        "results/generated/{condition}/seed{seed}/{group}",
        condition=CONDITIONS,
        seed=SEEDS,
        group=GROUPS,
    )


def all_targets():
    return [
        expand("results/qc/{subject}.png", subject=SUBJECTS),
        "results/table1.csv",
        "results/table1.md",
        "results/table1_vs_paper.md",
        "results/table1_summary.csv",
        "results/table1_summary.md",
        "results/metrics.csv",
        "results/evaluate/kde_sensitivity.csv",
        "results/figure1.png",
        "results/figures/forest.png",
        "results/figures/likelihood_histograms.png",
        "results/figures/memorization.png",
    ]


def generation_params(wildcards):
    """Image i of replicate seed s comes from generator seed 10000 s + i (n_images <= 10000)."""
    return config["generate"] | {"seed": 10000 * int(wildcards.seed)}
