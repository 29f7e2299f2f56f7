# brainmr: brain MR images generated on instruction (DreamBooth Stable Diffusion), judged as in
# Nakatsu et al. Table 1. Default config: the embedded demo (synthetic); config/adni.yaml: the paper.
from snakemake.utils import min_version

min_version("9.0")


# The demo is the default config. A --configfile (config/adni.yaml, or yours) replaces it whole
# instead of being merged into it, so that no demo setting leaks into a real run.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/cohort.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/dreambooth.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/instructions.smk"
include: "workflow/rules/privacy.smk"
include: "workflow/rules/report.smk"


localrules:
    all,
    write_demo_collection,
    write_scans_sheet,


rule all:
    input:
        all_targets(),
