"""brainmr.report: Table 1, its summary across seeds and its comparison with the paper, extra
metrics and figures, all formatted from the evaluation's tables (nothing is computed here)."""

from brainmr.report.figures import make_figures
from brainmr.report.tables import write_tables

__all__ = ["make_figures", "write_tables"]
