import _brainmr_path  # noqa: F401

from brainmr.cohort import CohortConfig, write_scans_sheet
from brainmr.logs import log_to

log_to(snakemake.log[0])
write_scans_sheet(snakemake.output[0], cohort=CohortConfig(**snakemake.params.cohort))
