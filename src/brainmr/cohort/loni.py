"""ADNI ingest: the LONI IDA collection CSV and the download folder it describes.

A LONI download unpacks as ``ADNI/<Subject>/<Description>/<YYYY-MM-DD_HH_MM_SS.0>/I<id>/...``
with the image as NIfTI (``.nii``/``.nii.gz``) or a DICOM series. The collection CSV lists one row
per image; we keep AD and CN, one T1 scan per subject, and find each image on disk.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from brainmr.cohort.config import CohortConfig
from brainmr.splits import stratified_subjects

log = logging.getLogger(__name__)

CSV_COLUMNS = [
    "Image Data ID",
    "Subject",
    "Group",
    "Sex",
    "Age",
    "Visit",
    "Modality",
    "Description",
    "Type",
    "Acq Date",
    "Format",
    "Downloaded",
]
SUBJECT_RE = re.compile(r"^\d{3}_S_\d{4}$")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


class CohortError(ValueError):
    """A collection CSV or download folder that cannot be used; the message lists every problem."""


def read_collection_csv(path: str | Path) -> pd.DataFrame:
    """Read a LONI collection CSV into tidy columns; every malformed row is reported at once."""
    path = Path(path)
    if not path.is_file():
        raise CohortError(f"{path}: collection CSV not found")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    raw.columns = [c.strip() for c in raw.columns]
    missing = [c for c in CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise CohortError(f"{path}: missing column(s) {missing}; expected LONI's {CSV_COLUMNS}")
    table = pd.DataFrame(
        {
            "image_id": raw["Image Data ID"].str.strip().map(_normalise_image_id),
            "subject": raw["Subject"].str.strip(),
            "group": raw["Group"].str.strip(),
            "sex": raw["Sex"].str.strip(),
            "age": pd.to_numeric(raw["Age"], errors="coerce"),
            "visit": raw["Visit"].str.strip(),
            "modality": raw["Modality"].str.strip(),
            "description": raw["Description"].str.strip(),
            "type": raw["Type"].str.strip(),
            "acq_date": pd.to_datetime(
                raw["Acq Date"].str.strip(), format="%m/%d/%Y", errors="coerce"
            ),
            "format": raw["Format"].str.strip(),
        }
    )
    problems = []
    for i, row in table.iterrows():
        line = i + 2  # header is line 1
        if pd.isna(row.image_id):
            problems.append(f"line {line}: bad Image Data ID {raw.at[i, 'Image Data ID']!r}")
        if not SUBJECT_RE.match(row.subject):
            problems.append(f"line {line}: bad Subject {row.subject!r} (expected like 941_S_1195)")
        if pd.isna(row.acq_date):
            problems.append(
                f"line {line}: bad Acq Date {raw.at[i, 'Acq Date']!r} (expected M/D/YYYY)"
            )
        if not row.group:
            problems.append(f"line {line}: empty Group for subject {row.subject}")
    if problems:
        raise CohortError(f"{path}: {len(problems)} malformed row(s):\n  " + "\n  ".join(problems))
    duplicated = table.loc[table.image_id.duplicated(), "image_id"].tolist()
    if duplicated:
        raise CohortError(f"{path}: image id(s) listed twice: {duplicated}")
    return table


def _normalise_image_id(value: str) -> str | None:
    match = re.fullmatch(r"I?(\d+)", value)
    return f"I{match.group(1)}" if match else None


def select_scans(collection: pd.DataFrame, cfg: CohortConfig) -> pd.DataFrame:
    """Keep the configured groups and T1 scans, then one scan per subject (cfg.selection)."""
    wanted = collection[collection.group.isin(cfg.groups)]
    skipped = collection.loc[~collection.group.isin(cfg.groups)].groupby("group").subject.nunique()
    for group, n in skipped.items():
        log.info("skipped %d subject(s) of group %s (keeping %s)", n, group, cfg.groups)
    is_t1 = wanted.modality.str.upper().eq(cfg.modality.upper()) & wanted.description.str.contains(
        cfg.description_pattern, case=False, regex=True
    )
    t1 = wanted[is_t1]
    no_t1 = sorted(set(wanted.subject) - set(t1.subject))
    if no_t1:
        log.warning(
            "%d subject(s) have no scan matching %r: %s", len(no_t1), cfg.description_pattern, no_t1
        )
    conflicting = t1.groupby("subject").group.nunique()
    if (conflicting > 1).any():
        raise CohortError(
            f"subjects listed in two groups: {conflicting[conflicting > 1].index.tolist()}"
        )
    ascending = cfg.selection == "earliest"
    ordered = t1.assign(_id=t1.image_id.str[1:].astype(int)).sort_values(
        ["subject", "acq_date", "_id"], ascending=[True, ascending, True]
    )
    chosen = ordered.groupby("subject", sort=True).head(1).drop(columns="_id")
    log.info("selected %d scan(s): %s", len(chosen), chosen.group.value_counts().to_dict())
    return chosen.reset_index(drop=True)


def description_dirname(description: str) -> str:
    """The folder name LONI gives a series description: spaces and punctuation become '_'."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", description)


def image_folder_candidates(download_dir: Path, row: pd.Series) -> list[Path]:
    """Folders that may hold this image: ``ADNI/<Subject>/*/<acq date>_*/I<id>``."""
    subject_dir = Path(download_dir) / "ADNI" / row.subject
    date = row.acq_date.strftime("%Y-%m-%d")
    return sorted(p for p in subject_dir.glob(f"*/{date}_*/{row.image_id}") if p.is_dir())


def locate_image(download_dir: Path, row: pd.Series) -> tuple[Path | None, str]:
    """The NIfTI file or DICOM series folder of one image, or (None, why not)."""
    folders = image_folder_candidates(download_dir, row)
    description = description_dirname(row.description)
    where = (
        f"{download_dir}/ADNI/{row.subject}/{description}/{row.acq_date:%Y-%m-%d}_*/{row.image_id}"
    )
    if not folders:
        return None, f"no folder {where}"
    if len(folders) > 1:
        return None, f"several folders for {row.image_id}: {[str(f) for f in folders]}"
    files = [p for p in folders[0].rglob("*") if p.is_file()]
    nifti = [p for p in files if p.name.endswith(NIFTI_SUFFIXES)]
    if len(nifti) == 1:
        return nifti[0], ""
    if len(nifti) > 1:
        return None, f"several NIfTI files in {folders[0]}: {[p.name for p in nifti]}"
    dicom = [p for p in files if p.suffix.lower() == ".dcm"]
    if dicom:
        series_dirs = {p.parent for p in dicom}
        if len(series_dirs) == 1:
            return series_dirs.pop(), ""
        return None, f"DICOM files in several folders under {folders[0]}"
    return None, f"no NIfTI (.nii/.nii.gz) or DICOM (.dcm) files in {folders[0]}"


def locate_images(scans: pd.DataFrame, download_dir: str | Path) -> pd.DataFrame:
    """Add a ``path`` column; one error lists every subject whose image is missing or ambiguous."""
    download_dir = Path(download_dir)
    paths, problems = [], []
    for _, row in scans.iterrows():
        path, why = locate_image(download_dir, row)
        paths.append(str(path) if path else "")
        if path is None:
            problems.append(f"{row.subject} ({row.image_id}): {why}")
    if problems:
        raise CohortError(
            f"{len(problems)} image(s) missing or ambiguous in {download_dir}:\n  "
            + "\n  ".join(problems)
        )
    return scans.assign(path=paths)


def assign_split(scans: pd.DataFrame, test_fraction: float, seed: int) -> pd.DataFrame:
    """Seeded subject-level train/test split, stratified by group (one row per subject here;
    brainmr.splits draws the test subjects)."""
    test = stratified_subjects(scans, test_fraction, seed)
    return scans.assign(split=np.where(scans["subject"].astype(str).isin(test), "test", "train"))


def scans_table(selected: pd.DataFrame, cfg: CohortConfig) -> pd.DataFrame:
    """The scans sheet: one row per subject with its image path and split."""
    table = assign_split(selected, cfg.test_fraction, cfg.seed)
    table = table.assign(acq_date=table.acq_date.dt.strftime("%Y-%m-%d"))
    columns = ["subject", "group", "image_id", "sex", "age", "visit", "description"]
    columns += ["acq_date", "format", "path", "split"]
    return table[columns].sort_values("subject").reset_index(drop=True)


def ingest_adni(cfg: CohortConfig) -> pd.DataFrame:
    """Collection CSV + download folder -> scans sheet (raises CohortError before any job runs)."""
    selected = select_scans(read_collection_csv(cfg.collection_csv), cfg)
    return scans_table(locate_images(selected, cfg.download_dir), cfg)


def write_collection_csv(path: str | Path, collection: pd.DataFrame) -> None:
    """Write a collection table in LONI's CSV layout (all fields quoted, dates as M/D/YYYY)."""
    from brainmr.io import atomic_path

    out = pd.DataFrame(
        {
            "Image Data ID": collection.image_id.str[1:],
            "Subject": collection.subject,
            "Group": collection.group,
            "Sex": collection.sex,
            "Age": collection.age,
            "Visit": collection.visit,
            "Modality": collection.modality,
            "Description": collection.description,
            "Type": collection.type,
            "Acq Date": [f"{d.month}/{d.day}/{d.year}" for d in collection.acq_date],
            "Format": collection.format,
            "Downloaded": collection.get("downloaded", ""),
        }
    )
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False, quoting=1)
