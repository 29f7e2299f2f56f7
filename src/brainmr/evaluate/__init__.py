"""brainmr.evaluate: everything that computes a judgement of images; brainmr.report formats it.

Its rooms, each importing only the ones before it (tests/unit/test_layers.py):

- shared modules: ``config`` (the stage configs; no torch, so the workflow reads them at parse
  time), ``images`` (loading), ``ceiling`` (the reconstruction-ceiling sets' names), ``toy``;
- ``stats``: intervals, tests, a binary classifier's figures, Fieller's ratio, split balance;
- ``judges``: the KDE and its bandwidth, the AD/CN CNN, morphometry, the outlier rule, fidelity
  and memorization metrics, the guard, per-image scoring;
- ``table1``: Table 1 across replicate seeds, the morphometric differences, the findings;
- ``studies``: remedies, instructions (attribute judges, following), the KDE's sensitivity, the
  calibration by simulation.

Import from the submodules."""
