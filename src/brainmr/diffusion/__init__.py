"""brainmr.diffusion: the demo base model, DreamBooth fine-tuning and image generation.

Names are imported lazily, so that the workflow can read the stage configs at parse time without
importing torch."""

from importlib import import_module

_HOMES = {
    "DemoBaseConfig": "config",
    "DreamBoothConfig": "config",
    "DreamBoothRunConfig": "config",
    "GenerateConfig": "config",
    "build_demo_base": "demo_base",
    "pretrain_demo_base": "demo_base",
    "write_pretrain_corpus": "demo_base",
    "train_dreambooth": "dreambooth",
    "generate_image_sets": "generate",
    "generate_images": "generate",
    "regenerate_image": "generate",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
