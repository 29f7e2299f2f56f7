"""Preprocessing: loading, skull strip, rigid registration, the centre coronal slice."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from brainmr.cohort.synth import synthesize_head
from brainmr.config import stage_config
from brainmr.io import load_png_gray
from brainmr.preprocess.config import PreprocessConfig
from brainmr.preprocess.register import register_rigid, template_grid
from brainmr.preprocess.scan import preprocess_scan
from brainmr.preprocess.skullstrip import SkullStripError, skull_strip, threshold_mask
from brainmr.preprocess.slicing import center_coronal_slice, scale_by_brain_percentile
from brainmr.preprocess.template import TEMPLATE_SHAPE, load_template, load_tissue_map
from brainmr.preprocess.volume import InputImageError, Volume, from_sitk, load_volume


def config(**overrides) -> PreprocessConfig:
    return stage_config(PreprocessConfig, "preprocess", **overrides)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reoriented(image: nib.Nifti1Image, codes: str) -> nib.Nifti1Image:
    """The same voxels stored in another axis order (``codes``, nibabel axis codes)."""
    current = nib.io_orientation(image.affine)
    return image.as_reoriented(
        nib.orientations.ornt_transform(current, nib.orientations.axcodes2ornt(tuple(codes)))
    )


@pytest.fixture(scope="module")
def ad_head():
    """A synthetic AD head (skull, scalp, pose, noise) and its true brain mask."""
    return synthesize_head(group="AD", atrophy=1.0, voxel_mm=1.5, seed=11)


@pytest.fixture(scope="module")
def stripped_head(ad_head) -> nib.Nifti1Image:
    """The same head, already skull-stripped with its true mask (for the fast ``none`` mode)."""
    head, mask = ad_head
    return nib.Nifti1Image(np.asarray(head.dataobj) * np.asarray(mask.dataobj), head.affine)


# --- templates -------------------------------------------------------------------------------


def test_template_is_nilearns_mni152():
    from nilearn import datasets

    tpl = load_template()
    nl = datasets.load_mni152_template(resolution=1)
    assert tpl.t1.shape == TEMPLATE_SHAPE
    assert np.allclose(tpl.affine, nl.affine)
    assert np.array_equal(tpl.t1, nl.get_fdata(dtype=np.float32))
    assert np.array_equal(
        tpl.mask, np.asarray(datasets.load_mni152_brain_mask(resolution=1).dataobj) > 0
    )
    gm = datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32)
    assert np.array_equal(load_tissue_map("gm"), gm)


# --- loading ---------------------------------------------------------------------------------


def test_4d_with_one_volume_is_accepted(tmp_path):
    data = np.random.default_rng(0).random((20, 24, 18, 1)).astype(np.float32)
    path = tmp_path / "one_volume.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), path)
    volume = load_volume(path)
    assert volume.data.shape == (20, 24, 18)
    assert np.allclose(volume.data, data[..., 0])


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("nan", np.where(np.arange(8000).reshape(20, 20, 20) == 5, np.nan, 1.0), "NaN"),
        ("inf", np.where(np.arange(8000).reshape(20, 20, 20) == 5, np.inf, 1.0), "NaN or infinite"),
        ("empty", np.zeros((20, 20, 20)), "empty"),
        ("flat", np.ones((20, 20, 20)), "constant"),
        ("two_d", np.ones((20, 20)), "2-D"),
        ("five_d", np.ones((20, 20, 20, 1, 2)), "5-D"),
        ("two_volumes", np.ones((20, 20, 20, 2)), "4-D"),
    ],
)
def test_unusable_images_raise_input_image_error_naming_the_file(tmp_path, name, data, message):
    path = tmp_path / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.eye(4)), path)
    with pytest.raises(InputImageError, match=message) as err:
        load_volume(path)
    assert str(path) in str(err.value)


def test_preprocess_scan_reports_the_bad_file(tmp_path):
    path = tmp_path / "broken.nii"
    path.write_bytes(b"not an image at all")
    out = tmp_path / "out"
    with pytest.raises(InputImageError, match="broken.nii"):
        preprocess_scan(
            path,
            subject="x",
            cfg=config(skull_strip="none"),
            slice_npy=out / "s.npy",
            slice_png=out / "s.png",
            qc_png=out / "qc.png",
            transform=out / "t.tfm",
        )
    assert not out.exists()  # nothing written for a bad scan


def write_dicom_series(image: sitk.Image, folder: Path) -> None:
    """One DICOM file per slice, with the geometry tags a reader needs (SimpleITK's recipe)."""
    folder.mkdir()
    cosines = image.GetDirection()
    tags = {
        "0008|0060": "MR",
        "0020|000d": "1.2.826.0.1.3680043.2.1125.1.1",
        "0020|000e": "1.2.826.0.1.3680043.2.1125.1.2",
        # row and column direction cosines: the first two columns of the direction matrix
        "0020|0037": "\\".join(str(cosines[i]) for i in (0, 3, 6, 1, 4, 7)),
    }
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        plane = image[:, :, k]
        for tag, value in tags.items():
            plane.SetMetaData(tag, value)
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        plane.SetMetaData("0020|0032", "\\".join(map(str, position)))
        plane.SetMetaData("0020|0013", str(k + 1))
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(plane)


def test_dicom_series_folder_loads_with_its_geometry(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 1000, (40, 50, 30)).astype(np.int16)  # (i, j, k)
    image = sitk.GetImageFromArray(data.transpose(2, 1, 0))
    image.SetSpacing([1.2, 1.1, 1.5])
    image.SetOrigin([10.0, -20.0, 30.0])
    angle = 0.3  # an oblique acquisition
    image.SetDirection([1, 0, 0, 0, np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle)])
    write_dicom_series(image, tmp_path / "series")
    volume = load_volume(tmp_path / "series")
    assert np.array_equal(volume.data, data)
    assert np.allclose(volume.affine, from_sitk(image)[1], atol=1e-4)


def test_folder_without_dicom_is_an_input_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(InputImageError, match="no DICOM series"):
        load_volume(tmp_path)


# --- skull strip -----------------------------------------------------------------------------


def test_deepbet_strips_a_synthetic_head(ad_head):
    head, truth = ad_head
    volume = Volume(np.asarray(head.dataobj, dtype=np.float32), head.affine, "synthetic")
    mask = skull_strip(volume, config(skull_strip="deepbet"))
    assert mask.shape == head.shape
    assert dice(mask, np.asarray(truth.dataobj) > 0) >= 0.9


def test_none_mode_takes_the_nonzero_brain(ad_head, stripped_head):
    volume = Volume(np.asarray(stripped_head.dataobj, dtype=np.float32), stripped_head.affine, "s")
    mask = skull_strip(volume, config(skull_strip="none"))
    assert dice(mask, np.asarray(ad_head[1].dataobj) > 0) >= 0.97
    # and on a background with noise (no exact zeros), Otsu separates the brain
    noisy = volume.data + np.random.default_rng(0).normal(5, 1, volume.data.shape).astype(
        np.float32
    )
    assert dice(threshold_mask(noisy), np.asarray(ad_head[1].dataobj) > 0) >= 0.9


WRITE_NONZERO_MASK = (
    "import nibabel as n, sys; i = n.load(sys.argv[1]); "
    "n.save(n.Nifti1Image((i.get_fdata() > 0).astype('uint8'), i.affine), sys.argv[2])"
)


def test_command_mode_runs_the_tool_and_reads_its_mask(stripped_head):
    volume = Volume(np.asarray(stripped_head.dataobj, dtype=np.float32), stripped_head.affine, "s")
    command = (
        f"{shlex.quote(sys.executable)} -c {shlex.quote(WRITE_NONZERO_MASK)} {{input}} {{output}}"
    )
    mask = skull_strip(volume, config(skull_strip="command", strip_command=command))
    assert np.array_equal(mask, volume.data > 0)
    # other braces in a command line (shell variables) are left alone
    braced = "BRAINMR_X=1; test ${BRAINMR_X} = 1 && " + command
    mask = skull_strip(volume, config(skull_strip="command", strip_command=braced))
    assert np.array_equal(mask, volume.data > 0)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            f"{shlex.quote(sys.executable)} -c 'import sys; sys.exit(3)' {{input}} {{output}}",
            "status 3",
        ),
        ("true {input} {output}", "wrote no mask"),
        ("true {input}", "must contain"),
    ],
)
def test_command_mode_failures_are_clear(stripped_head, command, message):
    volume = Volume(
        np.asarray(stripped_head.dataobj, dtype=np.float32), stripped_head.affine, "scan.nii"
    )
    with pytest.raises(SkullStripError, match=message):
        skull_strip(volume, config(skull_strip="command", strip_command=command))


# --- registration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("angles_deg", "shift_mm"),
    [((10.0, -10.0, 10.0), (10.0, -10.0, 10.0)), ((-6.0, 8.0, -3.0), (-4.0, 9.0, 2.0))],
)
def test_registration_recovers_a_known_rigid_transform(angles_deg, shift_mm):
    """Move the template brain by a known rigid transform A onto another grid (1.3 mm), add
    noise, register it back: the estimate must be A's inverse within 1 degree and 1 mm."""
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    template = template_grid()
    centre = np.array(template.TransformContinuousIndexToPhysicalPoint([98.0, 116.0, 94.0]))
    moved = sitk.Euler3DTransform(centre.tolist(), *np.deg2rad(angles_deg), shift_mm)
    grid = sitk.Image([150, 170, 140], sitk.sitkFloat32)
    grid.SetSpacing([1.3] * 3)
    grid.SetOrigin((centre - np.array([75, 85, 70]) * 1.3).tolist())
    data, affine = from_sitk(sitk.Resample(template, grid, moved, sitk.sitkLinear, 0.0))
    data = data + (data > 0) * np.random.default_rng(0).normal(0, 0.03, data.shape).astype(
        np.float32
    )

    estimate = register_rigid(data, affine, config())
    # the metric's random samples come from a fixed seed: the same scan, the same transform
    assert register_rigid(data, affine, config()).GetParameters() == estimate.GetParameters()

    truth = moved.GetInverse()
    rotation = (
        np.array(estimate.GetMatrix()).reshape(3, 3) @ np.array(truth.GetMatrix()).reshape(3, 3).T
    )
    angle = np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
    assert angle < 1.0
    brain_points = np.argwhere(load_template().mask)[::997]
    errors = [
        np.linalg.norm(
            np.subtract(
                estimate.TransformPoint(
                    template.TransformIndexToPhysicalPoint([int(v) for v in p])
                ),
                truth.TransformPoint(template.TransformIndexToPhysicalPoint([int(v) for v in p])),
            )
        )
        for p in brain_points
    ]
    assert max(errors) < 1.0


# --- the slice -------------------------------------------------------------------------------


def test_slice_orientation_superior_up_subject_right_on_the_left():
    tpl = load_template()
    volume = np.zeros(TEMPLATE_SHAPE, dtype=np.float32)
    # a mark in the subject's right hemisphere, high up: x = +40 mm, z = +60 mm, on the slice
    volume[98 + 40, 116, 72 + 60] = 1.0
    image = center_coronal_slice(volume, 160)
    row, col = np.argwhere(image == 1.0)[0]
    assert image.shape == (160, 160)
    assert row < 80 and col < 80  # upper half, left half (radiological)
    assert (row, col) == (80 - (60 - 22), 80 - 40)  # crop centred on x = 0, z = +22 mm
    assert tpl.affine[1, 3] + 116 == -18  # the plane is MNI y = -18 mm


def test_slice_pads_when_larger_than_the_grid():
    image = center_coronal_slice(np.ones(TEMPLATE_SHAPE, dtype=np.float32), 256)
    assert image.shape == (256, 256)
    assert image[128, 128] == 1 and image[0, 0] == 0 and image.sum() == 189 * 197


def test_normalise_intensity_maps_the_percentile_to_one():
    brain = np.arange(1, 1001, dtype=np.float32)
    image = scale_by_brain_percentile(np.array([[0.0, 500.0, 2000.0]]), brain, 99.5)
    scale = np.percentile(brain, 99.5)
    assert image.dtype == np.float32
    assert np.allclose(image, [[0.0, 500.0 / scale, 1.0]])


@pytest.fixture(scope="module")
def orientation_runs(stripped_head, tmp_path_factory):
    """The same stripped head stored PIR (as synthesized), RAS, LPS and with an oblique affine
    (rotated 12 degrees about the left-right axis), each preprocessed (``none`` strip mode)."""
    out = tmp_path_factory.mktemp("orientations")
    angle = np.deg2rad(12)
    tilt = np.eye(4)
    tilt[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    variants = {
        "PIR": stripped_head,
        "RAS": reoriented(stripped_head, "RAS"),
        "LPS": reoriented(stripped_head, "LPS"),
        "oblique": nib.Nifti1Image(np.asarray(stripped_head.dataobj), tilt @ stripped_head.affine),
    }
    runs = {}
    for name, image in variants.items():
        scan = out / f"{name}.nii.gz"
        nib.save(image, scan)
        before = sha256(scan)
        paths = {
            key: out / name / f"{key}{suffix}"
            for key, suffix in [
                ("slice_npy", ".npy"),
                ("slice_png", ".png"),
                ("qc_png", "_qc.png"),
                ("transform", ".tfm"),
            ]
        }
        seconds = preprocess_scan(scan, subject=name, cfg=config(skull_strip="none"), **paths)
        runs[name] = {"scan": scan, "hash": before, "seconds": seconds, **paths}
    return runs


def test_slice_is_the_same_whatever_the_input_orientation(orientation_runs):
    reference = np.load(orientation_runs["PIR"]["slice_npy"])
    for name in ("RAS", "LPS", "oblique"):
        other = np.load(orientation_runs[name]["slice_npy"])
        assert np.corrcoef(reference.ravel(), other.ravel())[0, 1] >= 0.95, name


def test_outputs_and_inputs_untouched(orientation_runs):
    for run in orientation_runs.values():
        assert sha256(run["scan"]) == run["hash"]  # the input is only read
        image = np.load(run["slice_npy"])
        assert image.shape == (160, 160) and image.dtype == np.float32
        assert 0 <= image.min() and image.max() <= 1 and image.max() > 0.9
        png = load_png_gray(run["slice_png"])
        assert png.shape == (160, 160) and np.abs(png - image).max() <= 1 / 255 + 1e-6
        assert isinstance(sitk.ReadTransform(str(run["transform"])), sitk.Transform)
        assert run["qc_png"].stat().st_size > 10_000
        assert set(run["seconds"]) == {"load", "strip", "register", "slice"}
        # the brain is centred: its centre of mass near the slice centre, and it is upright
        # (the brainstem, the narrowest part of the brain, is in the lower half)
        rows, cols = np.nonzero(image > 0.1)
        assert abs(cols.mean() - 80) < 8 and abs(rows.mean() - 80) < 20
        width_top = np.count_nonzero(image[40] > 0.1)
        width_bottom = np.count_nonzero(image[150] > 0.1)
        assert width_bottom < width_top


# --- threads ---------------------------------------------------------------------------------


def test_set_threads_caps_simpleitk_torch_and_blas_in_a_fresh_job(tmp_path):
    """A job's thread cap reaches every library, in a fresh process as Snakemake starts one
    (the thread environment variables removed, so that only the cap can set them): SimpleITK's
    global default and a filter made afterwards, torch's intra-op and inter-op pools, the loaded
    OpenMP/BLAS pools and the variables a child process inherits. The cap is one more than the
    cores, a count no library picks by itself."""
    from brainmr.threads import THREAD_ENV_VARS

    n = (os.cpu_count() or 1) + 1
    code = f"""
import json, os
import numpy, SimpleITK as sitk, torch
from threadpoolctl import threadpool_info
from brainmr.config import stage_config
from brainmr.preprocess.config import PreprocessConfig
from brainmr.preprocess.scan import set_threads
set_threads({n}, stage_config(PreprocessConfig, "preprocess", skull_strip="deepbet"))
print(json.dumps({{
    "sitk": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
    "sitk_filter": sitk.SmoothingRecursiveGaussianImageFilter().GetNumberOfThreads(),
    "registration": sitk.ImageRegistrationMethod().GetNumberOfThreads(),
    "torch": torch.get_num_threads(),
    "torch_interop": torch.get_num_interop_threads(),
    "pools": sorted({{p["num_threads"] for p in threadpool_info()}}),
    "env": sorted({{os.environ.get(v) for v in {THREAD_ENV_VARS!r}}}),
}}))
"""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV_VARS}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    caps = json.loads(proc.stdout.strip().splitlines()[-1])
    assert caps == {
        "sitk": n,
        "sitk_filter": n,
        "registration": n,
        "torch": n,
        "torch_interop": n,
        "pools": [n],
        "env": [str(n)],
    }


def test_limit_threads_is_at_least_one_and_caps_loaded_libraries(monkeypatch):
    import torch
    from threadpoolctl import threadpool_limits

    from brainmr.threads import THREAD_ENV_VARS, limit_threads

    for name in THREAD_ENV_VARS:
        monkeypatch.delenv(name, raising=False)  # put back as it was after the test
    sitk_before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    torch_before = torch.get_num_threads()
    try:
        with threadpool_limits(limits=None):  # restores the BLAS/OpenMP pools on exit
            assert limit_threads(0) == 1  # SimpleITK and torch are loaded: capped unasked
            assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 1
            assert torch.get_num_threads() == 1
            assert os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(sitk_before)
        torch.set_num_threads(torch_before)
