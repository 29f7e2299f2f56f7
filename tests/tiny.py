"""The tiny demo base the unit tests build in process (CPU, seconds): one home for its sizes."""

TINY_BASE = dict(
    resolution=32,
    vae_channels=[8, 16],
    latent_channels=4,
    unet_channels=[16, 32],
    text_hidden=32,
    text_layers=1,
    corpus_size=16,
    vae_steps=2,
    unet_steps=2,
    batch_size=4,
)
