import _brainmr_path  # noqa: F401

from brainmr.cohort import DemoConfig, write_demo_collection
from brainmr.logs import log_to

log_to(snakemake.log[0])
write_demo_collection(snakemake.output[0], demo=DemoConfig(**snakemake.params.demo))
