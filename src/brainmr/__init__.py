"""brainmr: brain MR image generation on instruction (DreamBooth SD) and its evaluation."""

__version__ = "0.1.0"
