"""brainmr.diffusion: the demo base model, DreamBooth fine-tuning and image generation.

Import from the submodules (``brainmr.diffusion.config`` holds the stage configs and imports no
torch, so the workflow reads them at parse time):

- the demo base: ``demo_base`` (tokenizer, models, assembly), ``demo_corpus`` (its pretraining
  corpus), ``demo_pretrain`` (its pretraining);
- DreamBooth: ``dreambooth`` (the training job and loop), ``batches`` (instance set, batch
  order), ``loss``, ``prior`` (class images), ``optim`` (optimizer, weight average), ``lora``,
  ``checkpoints``, ``identity`` (what a checkpoint must match), ``validation`` (grids),
  ``artifacts`` (loss log, model card, pipeline);
- ``generate`` (image sets), ``bottleneck`` (reals through the VAE), ``common`` (shared helpers)."""
