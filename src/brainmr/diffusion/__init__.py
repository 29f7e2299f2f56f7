"""brainmr.diffusion: the demo base model, DreamBooth fine-tuning and image generation."""

from brainmr.diffusion.config import DemoBaseConfig, DreamBoothConfig, GenerateConfig
from brainmr.diffusion.demo_base import build_demo_base, pretrain_demo_base, write_pretrain_corpus
from brainmr.diffusion.dreambooth import train_dreambooth
from brainmr.diffusion.generate import generate_image_sets, generate_images, regenerate_image

__all__ = [
    "DemoBaseConfig",
    "DreamBoothConfig",
    "GenerateConfig",
    "build_demo_base",
    "generate_image_sets",
    "generate_images",
    "pretrain_demo_base",
    "regenerate_image",
    "train_dreambooth",
    "write_pretrain_corpus",
]
