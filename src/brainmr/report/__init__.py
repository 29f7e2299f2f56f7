"""brainmr.report: Table 1, its summary across seeds and its comparison with the paper, extra
metrics and figures, all formatted from the evaluation's tables (nothing is computed here).

format (numbers, intervals, Markdown tables, the page header, figure titles) and labels (the
rows' labels and order) are shared; table1, summary and paper format one table each; tables
writes them."""

from brainmr.report.figures import make_figures
from brainmr.report.tables import write_tables

__all__ = ["make_figures", "write_tables"]
