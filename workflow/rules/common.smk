# Config and scans sheet, validated before the DAG is built; wildcard constraints; target functions.
import os
import re
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(
    0, str(Path(workflow.basedir) / "src")
)  # brainmr without an install, too

from brainmr.cohort import scans_for_config  # noqa: E402

validate(config, "../schemas/config.schema.yaml", set_default=True)
SCANS = scans_for_config(config).set_index("subject", drop=False)
validate(SCANS, "../schemas/scans.schema.yaml")

SUBJECTS = SCANS.index.tolist()
TRAIN = SCANS.index[SCANS.split == "train"].tolist()
TEST = SCANS.index[SCANS.split == "test"].tolist()
CONDITIONS = list(config["conditions"])
GROUPS = ["AD", "CN"]


wildcard_constraints:
    subject="|".join(map(re.escape, SUBJECTS)),
    condition="|".join(CONDITIONS),
    group="|".join(GROUPS),
    acq=r"\d{4}-\d{2}-\d{2}_\d{2}_\d{2}_\d{2}\.0",
    image_id=r"I\d+",


def scan_of(wildcards):
    return SCANS.at[wildcards.subject, "path"]


def group_of(wildcards):
    return SCANS.at[wildcards.subject, "group"]


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


def provenance(wildcards):
    """How the numbers were obtained, for table1_vs_paper.md."""
    return {
        "data": config["cohort"]["source"],
        "synthetic": config["synthetic"],
        "base_model": config["base_model"],
        "dreambooth_steps": config["dreambooth"]["max_train_steps"],
        "dreambooth_seed": config["dreambooth"]["seed"],
        "resolution": config["dreambooth"]["resolution"],
        "n_images": config["generate"]["n_images"],
        "generate_seed": config["generate"]["seed"],
        "scheduler": config["generate"]["scheduler"],
        "steps": config["generate"]["num_inference_steps"],
        "guidance_scale": config["generate"]["guidance_scale"],
        "subjects": {g: int((SCANS.group == g).sum()) for g in GROUPS},
    }


def image_sets():
    return expand(
        "results/generated/{condition}/{group}", condition=CONDITIONS, group=GROUPS
    )


def score_tables():
    return expand(
        "results/evaluate/scores/{condition}_{group}.tsv",
        condition=CONDITIONS,
        group=GROUPS,
    )


def all_targets():
    return [
        expand("results/qc/{subject}.png", subject=SUBJECTS),
        "results/table1.csv",
        "results/table1.md",
        "results/table1_vs_paper.md",
        "results/metrics.csv",
        "results/figure1.png",
        "results/figures/likelihood_histograms.png",
        "results/figures/memorization.png",
    ]
