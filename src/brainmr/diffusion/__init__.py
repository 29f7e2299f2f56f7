"""brainmr.diffusion"""
