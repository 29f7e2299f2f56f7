import _brainmr_path  # noqa: F401

from brainmr import GROUPS
from brainmr.evaluate.studies.instructed import instruction_images_file
from brainmr.logs import log_to

log_to(snakemake.log[0])
instruction_images_file(
    condition=snakemake.wildcards.condition,
    baseline=snakemake.params.baseline,
    seed=int(snakemake.wildcards.seed),
    instructed_dirs={g: snakemake.input[f"instructed_{g}"] for g in GROUPS},
    baseline_dirs={g: snakemake.input[f"baseline_{g}"] for g in GROUPS},
    scores=snakemake.input.scores,
    set_metrics=snakemake.input.set_metrics,
    judges=snakemake.input.judges,
    out_tsv=snakemake.output[0],
    batch_size=snakemake.params.batch_size,
)
