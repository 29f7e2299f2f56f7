"""Cohort: ADNI ingest (LONI collection CSV + download folder) and the embedded demo cohort."""

from __future__ import annotations

from pathlib import Path

from brainmr.cohort.config import CohortConfig, DemoConfig
from brainmr.cohort.demo import plan_demo_collection, plan_demo_scans
from brainmr.cohort.loni import CohortError, ingest_adni, write_collection_csv
from brainmr.cohort.sets import instance_set, read_slices, slice_table, write_slice_table
from brainmr.io import write_tsv

__all__ = [
    "CohortConfig",
    "CohortError",
    "DemoConfig",
    "ingest_adni",
    "instance_set",
    "plan_demo_collection",
    "plan_demo_scans",
    "read_slices",
    "scans_for_config",
    "slice_table",
    "write_demo_collection",
    "write_scans_sheet",
    "write_slice_table",
]


def scans_for_config(config: dict):
    """The scans sheet the DAG is built on, known at parse time (demo: planned; ADNI: found)."""
    cohort = CohortConfig(**config["cohort"])
    if cohort.source == "demo":
        return plan_demo_scans(cohort, DemoConfig(**config["demo"]))
    return ingest_adni(cohort)


def write_demo_collection(out_csv: str | Path, *, demo: DemoConfig) -> None:
    """Write the demo's LONI-style collection CSV."""
    write_collection_csv(out_csv, plan_demo_collection(demo))


def write_scans_sheet(out_tsv: str | Path, *, cohort: CohortConfig) -> None:
    """Read the collection CSV and download folder (ADNI or the written demo) into scans.tsv."""
    write_tsv(out_tsv, ingest_adni(cohort))
