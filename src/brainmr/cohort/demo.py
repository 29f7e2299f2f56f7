"""The embedded demo cohort, planned from config alone so that the DAG is known at parse time.

The plan is a LONI-style collection (AD, CN and a few MCI subjects, some with a second visit);
the same selection code as for ADNI picks one scan per subject, and per-subject rules write each
selected scan into ADNI's download layout (``brainmr.cohort.synth``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from brainmr.cohort.config import CohortConfig, DemoConfig
from brainmr.cohort.loni import description_dirname, scans_table, select_scans

DEMO_DESCRIPTION = "MPRAGE"
SCAN_NAME = "ADNI_{subject}_MR_MPRAGE_{image_id}.nii.gz"


def plan_demo_collection(cfg: DemoConfig) -> pd.DataFrame:
    """A seeded collection table shaped like ``read_collection_csv``'s, plus acquisition times."""
    rng = np.random.default_rng(cfg.seed)
    groups = ["AD"] * cfg.n_ad + ["CN"] * cfg.n_cn + ["MCI"] * cfg.n_other
    n = len(groups)
    numbers = rng.choice(np.arange(1, 10000), size=n, replace=False)
    sites = rng.integers(2, 150, size=n)
    rows = []
    next_id = 200000
    for i, group in enumerate(groups):
        subject = f"{sites[i]:03d}_S_{numbers[i]:04d}"
        first = pd.Timestamp("2011-01-01") + pd.Timedelta(days=int(rng.integers(0, 700)))
        visits = [("sc", first)]
        if i % 3 == 0:  # a follow-up visit, so that selection has something to choose
            visits.append(("m12", first + pd.Timedelta(days=int(rng.integers(330, 400)))))
        for visit, date in visits:
            next_id += int(rng.integers(1, 500))
            seconds = int(rng.integers(8 * 3600, 18 * 3600))
            hms = f"{seconds // 3600:02d}_{seconds % 3600 // 60:02d}_{seconds % 60:02d}"
            rows.append(
                {
                    "image_id": f"I{next_id}",
                    "subject": subject,
                    "group": group,
                    "sex": str(rng.choice(["F", "M"])),
                    "age": int(rng.integers(60, 90)) + (1 if visit == "m12" else 0),
                    "visit": visit,
                    "modality": "MRI",
                    "description": DEMO_DESCRIPTION,
                    "type": "Original",
                    "acq_date": date,
                    "acq_time": hms,
                    "format": "NiFTI",
                    "downloaded": "11/20/2026",
                }
            )
    return pd.DataFrame(rows)


def demo_scan_path(download_dir: str | Path, row: pd.Series) -> Path:
    """Where LONI puts this image: ADNI/<PTID>/<description>/<date_time.0>/I<id>/<file>."""
    stamp = f"{row.acq_date:%Y-%m-%d}_{row.acq_time}.0"
    return (
        Path(download_dir)
        / "ADNI"
        / row.subject
        / description_dirname(row.description)
        / stamp
        / row.image_id
        / SCAN_NAME.format(subject=row.subject, image_id=row.image_id)
    )


def plan_demo_scans(cohort: CohortConfig, demo: DemoConfig) -> pd.DataFrame:
    """The scans sheet the demo will have once its scans are written (same selection and split)."""
    collection = plan_demo_collection(demo)
    selected = select_scans(collection, cohort)
    paths = [str(demo_scan_path(cohort.download_dir, row)) for _, row in selected.iterrows()]
    return scans_table(selected.assign(path=paths), cohort)


def demo_scan_seed(demo: DemoConfig, image_id: str) -> int:
    """A per-scan seed: subjects differ, and a scan is the same whatever else is in the cohort."""
    return demo.seed * 1_000_003 + int(image_id.lstrip("I"))
