import _brainmr_path  # noqa: F401

from brainmr.evaluate.scoring import judge_images
from brainmr.logs import log_to

log_to(snakemake.log[0])
judge_images(  # one seed's CNN on one image set: P(AD) and features in one pass
    scores=snakemake.input.scores,
    classifier=snakemake.input.classifier,
    out_tsv=snakemake.output.table,
    out_features=snakemake.output.features,
    batch_size=snakemake.params.batch_size,
    threads=snakemake.threads,
)
