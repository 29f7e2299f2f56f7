"""brainmr.cohort"""
