import _brainmr_path  # noqa: F401

from brainmr.diffusion.config import DemoBaseConfig
from brainmr.diffusion.demo_corpus import write_pretrain_corpus
from brainmr.logs import log_to

log_to(snakemake.log[0])
write_pretrain_corpus(snakemake.output[0], cfg=DemoBaseConfig(**snakemake.params.demo_base))
