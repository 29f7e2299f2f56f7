"""The judges of an image set: the KDE (and its bandwidth), the AD/CN CNN, morphometry, the
outlier rule, fidelity and memorization metrics, the guard, and per-image scoring. Import from the
submodules."""
