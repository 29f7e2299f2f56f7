"""brainmr.evaluate: KDE log-likelihoods, the AD/CN CNN, per-image scores, outliers, set metrics
and the summary across replicate seeds. Everything here computes; brainmr.report formats.

Import from the submodules (``brainmr.evaluate.config`` holds the stage configs and imports no
torch, so the workflow reads them at parse time)."""
