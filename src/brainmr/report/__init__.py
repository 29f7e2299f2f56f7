"""brainmr.report: Table 1 (and its comparison with the paper), extra metrics, figures."""

from brainmr.report.figures import make_figures
from brainmr.report.table1 import build_table1

__all__ = ["build_table1", "make_figures"]
