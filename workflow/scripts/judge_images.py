import _brainmr_path  # noqa: F401

from brainmr.evaluate.judges.scoring import judge_image_sets
from brainmr.logs import log_to

log_to(snakemake.log[0])
judge_image_sets(  # one seed's CNN on every image set: P(AD) and features in one pass each
    scores=snakemake.input.scores,
    classifier=snakemake.input.classifier,
    out_tables=snakemake.output.tables,
    out_features=snakemake.output.features,
    batch_size=snakemake.params.batch_size,
    threads=snakemake.threads,
)
