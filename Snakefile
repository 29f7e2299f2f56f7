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


# Jobs of seconds on small tables run where Snakemake runs: on a cluster each would cost a
# submission, a queue wait and a status poll, and the summaries and reports run one after another.
localrules:
    all,
    write_demo_collection,
    write_scans_sheet,
    write_slice_table,
    write_requests,
    flag_references,
    summarise_replicates,
    summarise_remedies,
    summarise_instructions,
    summarise_privacy,
    report_tables,
    draw_figures,
    report_morphometry,
    report_remedies,
    report_instructions,
    report_privacy,


rule all:
    input:
        all_targets(),
