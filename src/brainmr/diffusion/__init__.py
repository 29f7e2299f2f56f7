"""brainmr.diffusion: the demo base model, DreamBooth fine-tuning and image generation.

Import from the submodules (``brainmr.diffusion.config`` holds the stage configs and imports no
torch, so the workflow reads them at parse time)."""
