"""The studies beyond Table 1: remedies, instructions (attribute judges, instruction following),
the KDE's sensitivity, and the calibration of the estimators by simulation. Import from the
submodules."""
