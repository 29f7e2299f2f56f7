"""ADNI ingest on a collection CSV and download folders made here, and the demo round trip."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from brainmr.cohort import (
    CohortConfig,
    CohortError,
    DemoConfig,
    ingest_adni,
    instance_set,
    plan_demo_scans,
    slice_table,
    write_demo_collection,
)
from brainmr.cohort.demo import demo_scan_path, plan_demo_collection
from brainmr.cohort.loni import assign_split, read_collection_csv
from brainmr.config import stage_config

HEADER = (
    '"Image Data ID","Subject","Group","Sex","Age","Visit","Modality","Description","Type",'
    '"Acq Date","Format","Downloaded"\n'
)


def csv_row(image_id, subject, group, date, description="MPRAGE", visit="sc", fmt="NiFTI"):
    return (
        f'"{image_id}","{subject}","{group}","F","74","{visit}","MRI","{description}","Original",'
        f'"{date}","{fmt}","11/20/2026"\n'
    )


def put_image(root: Path, subject, description, date_dir, image_id, kind="nii"):
    folder = root / "ADNI" / subject / description / date_dir / image_id
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "dicom":
        for i in range(3):
            (folder / f"ADNI_{subject}_MR_{i}.dcm").write_bytes(b"\0")
    else:
        (folder / f"ADNI_{subject}_MR_{description}_{image_id}.{kind}").write_bytes(b"\0")
    return folder


def cohort_cfg(tmp_path, **overrides) -> CohortConfig:
    base = dict(source="adni", collection_csv=str(tmp_path / "c.csv"), download_dir=str(tmp_path))
    return stage_config(CohortConfig, "cohort", **(base | overrides))


@pytest.fixture
def adni(tmp_path):
    """Four AD/CN subjects (NIfTI, .nii.gz, DICOM; one with two visits) and one MCI subject."""
    rows = [
        csv_row("40817", "941_S_1195", "AD", "2/21/2007", visit="sc"),
        csv_row("I90001", "941_S_1195", "AD", "3/1/2008", visit="m12"),
        csv_row("50000", "002_S_0295", "CN", "4/18/2006", description="MP-RAGE, REPEAT"),
        csv_row("50010", "005_S_0223", "CN", "12/9/2010", fmt="DCM"),
        csv_row("50020", "007_S_1222", "AD", "10/31/2011"),
        csv_row("60000", "011_S_0003", "MCI", "9/1/2005"),
    ]
    (tmp_path / "c.csv").write_text(HEADER + "".join(rows))
    put_image(tmp_path, "941_S_1195", "MPRAGE", "2007-02-21_13_32_36.0", "I40817")
    put_image(tmp_path, "941_S_1195", "MPRAGE", "2008-03-01_10_00_00.0", "I90001")
    put_image(
        tmp_path, "002_S_0295", "MP-RAGE__REPEAT", "2006-04-18_08_20_30.0", "I50000", "nii.gz"
    )
    put_image(tmp_path, "005_S_0223", "MPRAGE", "2010-12-09_09_00_00.0", "I50010", "dicom")
    put_image(tmp_path, "007_S_1222", "MPRAGE", "2011-10-31_11_11_11.0", "I50020")
    return tmp_path


def test_ingest_selects_one_t1_per_ad_cn_subject(adni, caplog):
    caplog.set_level("INFO")
    scans = ingest_adni(cohort_cfg(adni))
    assert sorted(scans.subject) == ["002_S_0295", "005_S_0223", "007_S_1222", "941_S_1195"]
    assert "skipped 1 subject(s) of group MCI" in caplog.text
    row = scans.set_index("subject").loc["941_S_1195"]
    assert row.image_id == "I40817" and row.acq_date == "2007-02-21"  # earliest by default
    paths = scans.set_index("subject").path
    assert paths["002_S_0295"].endswith(".nii.gz")
    assert Path(paths["005_S_0223"]).is_dir()  # DICOM series folder
    assert scans.set_index("subject").at["002_S_0295", "description"] == "MP-RAGE, REPEAT"


def test_latest_selection_rule(adni):
    scans = ingest_adni(cohort_cfg(adni, selection="latest")).set_index("subject")
    assert scans.at["941_S_1195", "image_id"] == "I90001"


def test_missing_and_ambiguous_images_are_listed_together(adni):
    put_image(adni, "007_S_1222", "MPRAGE", "2011-10-31_11_11_11.0", "I50020", "nii.gz")
    for f in (adni / "ADNI" / "002_S_0295").rglob("*.nii.gz"):
        f.unlink()
    with pytest.raises(CohortError) as err:
        ingest_adni(cohort_cfg(adni))
    message = str(err.value)
    assert "2 image(s) missing or ambiguous" in message
    assert "002_S_0295 (I50000)" in message and "no NIfTI" in message
    assert "007_S_1222 (I50020)" in message and "several NIfTI files" in message


def test_missing_folder_names_expected_path(adni):
    import shutil

    shutil.rmtree(adni / "ADNI" / "007_S_1222")
    with pytest.raises(CohortError, match=r"007_S_1222 \(I50020\): no folder .*ADNI/007_S_1222"):
        ingest_adni(cohort_cfg(adni))


def test_malformed_rows_are_reported_with_line_numbers(tmp_path):
    rows = [
        csv_row("1", "941_S_1195", "AD", "2/21/2007"),
        csv_row("X2", "941_S_1196", "AD", "2/21/2007"),
        csv_row("3", "94_S_11", "CN", "2/21/2007"),
        csv_row("4", "941_S_1197", "CN", "2007-02-21"),
    ]
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "".join(rows))
    with pytest.raises(CohortError) as err:
        read_collection_csv(path)
    message = str(err.value)
    assert "3 malformed row(s)" in message and str(path) in message
    assert "line 3: bad Image Data ID 'X2'" in message
    assert "line 4: bad Subject '94_S_11'" in message
    assert "line 5: bad Acq Date '2007-02-21'" in message


def test_missing_columns_named(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text('"Subject","Group"\n"941_S_1195","AD"\n')
    with pytest.raises(CohortError, match="missing column"):
        read_collection_csv(path)


def test_split_is_seeded_stratified_and_subject_level():
    scans = pd.DataFrame(
        {"subject": [f"{i:03d}_S_{i:04d}" for i in range(70)], "group": ["AD"] * 30 + ["CN"] * 40}
    )
    a = assign_split(scans, 0.2, seed=3)
    b = assign_split(scans, 0.2, seed=3)
    c = assign_split(scans, 0.2, seed=4)
    assert a.split.tolist() == b.split.tolist()
    assert a.split.tolist() != c.split.tolist()
    counts = a.groupby(["group", "split"]).size()
    assert counts["AD", "test"] == 6 and counts["CN", "test"] == 8
    assert not set(a.subject[a.split == "test"]) & set(a.subject[a.split == "train"])


def test_demo_plan_is_three_to_four_with_skipped_mci():
    demo = stage_config(DemoConfig, "demo", n_ad=6, n_cn=8, n_other=2)
    collection = plan_demo_collection(demo)
    assert collection.groupby("group").subject.nunique().to_dict() == {"AD": 6, "CN": 8, "MCI": 2}
    assert collection.subject.nunique() < len(collection)  # some follow-up visits


def test_demo_round_trip_through_adni_ingest(tmp_path):
    """The written demo (CSV + ADNI layout) reads back through the ingest to the planned sheet."""
    demo = stage_config(DemoConfig, "demo", n_ad=3, n_cn=4, n_other=1)
    cfg = cohort_cfg(tmp_path, source="demo", test_fraction=0.3)
    planned = plan_demo_scans(cfg, demo)
    write_demo_collection(cfg.collection_csv, demo=demo)
    for path in planned.path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"\0")
    ingested = ingest_adni(cfg)
    pd.testing.assert_frame_equal(ingested, planned, check_dtype=False)
    one = plan_demo_collection(demo).iloc[0]
    rel = demo_scan_path(tmp_path, one).relative_to(tmp_path).parts
    assert rel[0] == "ADNI" and rel[1] == one.subject and rel[5].endswith(f"{one.image_id}.nii.gz")


def test_instance_set_keeps_prompts_whole():
    scans = pd.DataFrame(
        {
            "subject": ["001_S_0001", "002_S_0002", "003_S_0003"],
            "group": ["AD", "CN", "CN"],
            "split": ["train", "train", "test"],
        }
    )
    slices = slice_table(scans, [f"results/slices/{s}.npy" for s in scans.subject])
    prompts = {"AD": "AD, a MRI brain, ADNI2", "CN": "CN, a MRI brain, ADNI2"}
    inst = instance_set(slices, prompts)
    assert inst.subject.tolist() == ["001_S_0001", "002_S_0002"]
    assert inst.prompt.tolist() == ["AD, a MRI brain, ADNI2", "CN, a MRI brain, ADNI2"]
    assert slice_table(scans, ["results/slices/001_S_0001.npy"]).subject.tolist() == ["001_S_0001"]
    with pytest.raises(ValueError, match="not in the scans sheet"):
        slice_table(scans, ["results/slices/999_S_0001.npy"])
    # a model of one class (per_class_models) is trained on that class's slices alone
    only_cn = instance_set(slices, {"CN": prompts["CN"]})
    assert only_cn.subject.tolist() == ["002_S_0002"] and set(only_cn.group) == {"CN"}
    with pytest.raises(ValueError, match="unknown class"):
        instance_set(slices, {"MCI": "MCI, a MRI brain"})
    with pytest.raises(ValueError, match="no train slices of class"):
        instance_set(slices[slices.group == "CN"], prompts)


def test_the_slice_table_is_written_once_and_read_with_its_types(tmp_path):
    from brainmr.cohort import read_slices, write_slice_table

    scans = pd.DataFrame(
        {
            "subject": ["001_S_0001", "002_S_0002", "003_S_0003"],
            "group": ["AD", "CN", "CN"],
            "split": ["train", "train", "test"],
            "age": [71.5, 80, 66],
            "sex": ["F", "M", "F"],
            "image_id": ["I1", "I2", "I3"],
        }
    )
    paths = [f"results/slices/{s}.npy" for s in scans.subject]
    out = tmp_path / "slices.tsv"
    write_slice_table(out, scans=scans, slice_paths=paths)
    table = read_slices(out)
    assert table.columns.tolist() == ["subject", "group", "split", "path", "age", "sex"]
    assert table.subject.tolist() == scans.subject.tolist() and table.age.dtype == float
    assert table.path.tolist() == paths
    test = read_slices(out, "test")
    assert test.subject.tolist() == ["003_S_0003"] and test.index.tolist() == [0]
    with pytest.raises(ValueError, match="without a slice: \\['003_S_0003'\\]"):
        write_slice_table(tmp_path / "x.tsv", scans=scans, slice_paths=paths[:2])
