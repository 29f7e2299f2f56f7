import _brainmr_path  # noqa: F401

from brainmr.conditions import conditions_from
from brainmr.logs import log_to
from brainmr.report import write_tables

log_to(snakemake.log[0])
write_tables(
    inputs=dict(snakemake.input.items()),
    outputs=dict(snakemake.output.items()),
    conditions=conditions_from(snakemake.params.conditions),
    run_label=snakemake.params.run_label,
    synthetic=snakemake.params.synthetic,
    provenance=snakemake.params.provenance,
    mad_k=snakemake.params.mad_k,
)
