"""The rows of Table 1 and of every table beside it: their labels and their order.

One row per (condition, class), labelled group + the Condition's label, in config order, AD
before CN; then the outlier row (all generated outliers), the ceiling sets (held-out reals
through the generator's bottleneck) and the held-out real AD and CN.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from brainmr import GROUPS
from brainmr.evaluate.ceiling import CEILING_PREFIX, is_ceiling
from brainmr.evaluate.judges.outliers import REAL_CONDITION
from brainmr.evaluate.table1.replicates import OUTLIER_SET

OUTLIER_LABEL = "outlier"
REAL_LABEL = "held-out real {group}"
CEILING_LABEL = "held-out real {group} through the generator ({bottleneck})"


def row_label(group: str, condition: str, conditions: Mapping) -> str:
    """group + the condition's label; a condition without one is told apart by its name."""
    suffix = conditions[condition].label
    return f"{group}{suffix if suffix is not None else f' ({condition})'}"


def set_label(condition: str, group: str, conditions: Mapping) -> str:
    """The row label of any set of the evaluation's tables (generated, outlier, held-out real)."""
    if condition == OUTLIER_SET:
        return OUTLIER_LABEL
    if condition == REAL_CONDITION:
        return REAL_LABEL.format(group=group)
    if is_ceiling(condition):
        return CEILING_LABEL.format(group=group, bottleneck=condition[len(CEILING_PREFIX) :])
    return row_label(group, condition, conditions)


def ordered(table: pd.DataFrame, conditions: Mapping) -> pd.DataFrame:
    """Rows in Table 1's order: conditions in config order (AD, CN), outlier, ceiling sets,
    held-out reals."""
    order = [(c, g) for c in conditions for g in GROUPS] + [(OUTLIER_SET, "")]
    ceilings = [c for c in dict.fromkeys(table["condition"]) if is_ceiling(c)]
    order += [(c, g) for c in ceilings for g in GROUPS]
    order += [(REAL_CONDITION, g) for g in GROUPS]
    rank = {key: i for i, key in enumerate(order)}
    keys = [
        rank.get((c, g if isinstance(g, str) else ""), len(rank))
        for c, g in zip(table["condition"], table["group"], strict=True)
    ]
    return table.assign(_rank=keys).sort_values("_rank", kind="stable").drop(columns="_rank")
