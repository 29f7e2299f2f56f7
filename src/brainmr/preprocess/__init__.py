"""brainmr.preprocess"""
