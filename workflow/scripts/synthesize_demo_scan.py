import _brainmr_path  # noqa: F401

from brainmr.cohort import DemoConfig
from brainmr.cohort.demo import demo_scan_seed
from brainmr.cohort.synth import write_demo_scan
from brainmr.logs import log_to
from brainmr.threads import limit_threads

log_to(snakemake.log[0])
limit_threads(snakemake.threads)
demo = DemoConfig(**snakemake.params.demo)
write_demo_scan(
    snakemake.output[0],
    group=snakemake.params.group,
    atrophy=demo.atrophy,
    voxel_mm=demo.voxel_mm,
    seed=demo_scan_seed(demo, snakemake.wildcards.image_id),
    age=snakemake.params.age,  # the collection table's age and sex for this scan (validated)
    sex=snakemake.params.sex,
)
