"""brainmr.evaluate"""
