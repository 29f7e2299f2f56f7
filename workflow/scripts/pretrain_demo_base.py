import _brainmr_path  # noqa: F401

from brainmr.diffusion.config import DemoBaseConfig
from brainmr.diffusion.demo_pretrain import pretrain_demo_base
from brainmr.logs import log_to

log_to(snakemake.log[0])
pretrain_demo_base(
    base_dir=snakemake.input.base,
    corpus_npz=snakemake.input.corpus,
    out_dir=snakemake.output[0],
    cfg=DemoBaseConfig(**snakemake.params.demo_base),
    threads=snakemake.threads,
)
