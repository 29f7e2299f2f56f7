"""brainmr.report"""
