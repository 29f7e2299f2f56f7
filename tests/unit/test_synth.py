"""brainmr.cohort.synth: synthetic ADNI-like heads, their geometry, determinism, skull and scalp,
AD atrophy, age and sex as the scan shows them (the anatomy model itself: test_anatomy.py)."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy import stats as sps

from brainmr.cohort.anatomy import SEX_SCALE
from brainmr.cohort.synth import FOV_MM, synthesize_head, write_demo_scan

VOXEL_MM = 1.5  # coarser than the demo's 1.2 mm: the same code, a faster test


@pytest.fixture(scope="module")
def heads():
    """A CN and an AD head of the same subject (seed) and a CN head of another seed."""
    return {
        name: synthesize_head(group=group, atrophy=1.0, voxel_mm=VOXEL_MM, seed=seed)
        for name, group, seed in [("cn", "CN", 7), ("ad", "AD", 7), ("other", "CN", 8)]
    }


def _data(image: nib.Nifti1Image) -> np.ndarray:
    return np.asarray(image.dataobj)


def test_grid_is_sagittal_non_ras_at_the_requested_voxel_size(heads):
    head, mask = heads["cn"]
    assert nib.aff2axcodes(head.affine) == ("P", "I", "R")
    assert np.allclose(head.header.get_zooms()[:3], VOXEL_MM)
    # PIR: axes along A-P, S-I, R-L
    assert head.shape == tuple(int(round(FOV_MM[a] / VOXEL_MM)) for a in (1, 2, 0))
    assert mask.shape == head.shape and np.allclose(mask.affine, head.affine)
    assert head.get_data_dtype() == np.int16


def test_same_seed_same_head_other_seed_other_head(heads):
    again, again_mask = synthesize_head(group="CN", atrophy=1.0, voxel_mm=VOXEL_MM, seed=7)
    assert np.array_equal(_data(again), _data(heads["cn"][0]))
    assert np.array_equal(_data(again_mask), _data(heads["cn"][1]))
    assert not np.array_equal(_data(heads["other"][0]), _data(heads["cn"][0]))


def test_brain_mask_is_brain_sized_and_the_pose_varies(heads):
    volumes = {}
    centres = {}
    for name, (head, mask) in heads.items():
        m = _data(mask) > 0
        volumes[name] = m.sum() * VOXEL_MM**3 / 1000  # cm3
        centres[name] = nib.affines.apply_affine(head.affine, np.argwhere(m).mean(0))
    for volume in volumes.values():
        assert 1300 < volume < 2100  # the MNI152 brain with brainstem: ~1.9 litres
    assert np.linalg.norm(centres["cn"] - centres["other"]) > 1.0  # random shift per subject


def test_skull_is_dark_and_scalp_bright_around_the_brain(heads):
    head, mask = heads["cn"]
    data = _data(head).astype(float)
    brain = _data(mask) > 0
    inside = np.percentile(data[brain], 95)  # white matter
    # a 3 mm shell just outside the brain: CSF and the skull, dark on T1
    near = ndi.binary_dilation(brain, iterations=2) & ~brain
    assert np.median(data[near]) < 0.5 * inside
    # further out, the scalp fat is at least as bright as white matter
    far = ndi.binary_dilation(brain, iterations=10) & ~ndi.binary_dilation(brain, iterations=5)
    assert np.percentile(data[far], 95) > 0.9 * inside
    # and the air around the head is dark (noise only)
    assert np.median(data[0]) < 0.1 * inside


def _interior_csf_voxels(head: nib.Nifti1Image, mask: nib.Nifti1Image) -> int:
    """Dark voxels deep inside the brain: the ventricles."""
    data = _data(head).astype(float)
    deep = ndi.binary_erosion(_data(mask) > 0, iterations=8)
    return int(np.count_nonzero(deep & (data < 0.45 * np.percentile(data[deep], 95))))


def test_ad_head_has_larger_ventricles_than_cn_of_same_seed(heads):
    cn = _interior_csf_voxels(*heads["cn"])
    ad = _interior_csf_voxels(*heads["ad"])
    assert ad > 1.5 * cn, (ad, cn)
    # the thinner cortex shrinks the brain
    assert _data(heads["ad"][1]).sum() < _data(heads["cn"][1]).sum()


def test_zero_atrophy_ad_equals_cn():
    ad, _ = synthesize_head(group="AD", atrophy=0.0, voxel_mm=2.0, seed=3)
    cn, _ = synthesize_head(group="CN", atrophy=1.0, voxel_mm=2.0, seed=3)
    assert np.array_equal(_data(ad), _data(cn))


def test_write_demo_scan_writes_a_gzipped_nifti_atomically(tmp_path, heads):
    path = tmp_path / "sub" / "ADNI_scan.nii.gz"
    write_demo_scan(path, group="CN", atrophy=1.0, voxel_mm=VOXEL_MM, seed=7)
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # gzip magic
    with gzip.open(path) as fh:
        assert len(fh.read(400)) == 400
    image = nib.load(path)
    assert np.array_equal(np.asarray(image.dataobj), _data(heads["cn"][0]))
    assert np.allclose(image.affine, heads["cn"][0].affine)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_unknown_group_is_refused():
    with pytest.raises(ValueError, match="unknown group"):
        synthesize_head(group="XYZ", atrophy=1.0, voxel_mm=2.0, seed=0)


def test_no_age_or_sex_is_the_head_as_before(heads):
    head, mask = synthesize_head(
        group="CN", atrophy=1.0, voxel_mm=VOXEL_MM, seed=7, age=None, sex=None
    )
    assert np.array_equal(_data(head), _data(heads["cn"][0]))
    assert np.array_equal(_data(mask), _data(heads["cn"][1]))


@pytest.mark.parametrize(
    ("age", "sex", "match"),
    [
        (70, "f", "unknown sex 'f'"),
        (70, "W", "unknown sex 'W'"),
        (17, "F", "within"),
        (111, "M", "within"),
        (float("nan"), "M", "within"),
        (float("inf"), "F", "within"),
        ("70", "F", "number"),
        (True, "F", "number"),
    ],
)
def test_invalid_age_or_sex_is_refused(age, sex, match):
    with pytest.raises(ValueError, match=match):
        synthesize_head(group="CN", atrophy=1.0, voxel_mm=2.0, seed=0, age=age, sex=sex)


def test_older_head_has_larger_ventricles_in_the_scan():
    young, old = (
        synthesize_head(group="CN", atrophy=1.0, voxel_mm=2.0, seed=9, age=age, sex="F")
        for age in (62, 85)
    )
    assert _interior_csf_voxels(*old) > 1.2 * _interior_csf_voxels(*young)


def test_men_have_larger_brains_than_women_by_the_sex_scale():
    def volume(seed: int, sex: str) -> float:
        _, mask = synthesize_head(group="CN", atrophy=1.0, voxel_mm=2.0, seed=seed, sex=sex)
        return float(_data(mask).sum()) * 2.0**3

    women = [volume(seed, "F") for seed in (1, 2, 3)]
    men = [volume(seed, "M") for seed in (4, 5, 6)]
    expected = (SEX_SCALE["M"] / SEX_SCALE["F"]) ** 3  # 1.197
    assert volume(1, "M") / women[0] == pytest.approx(expected, rel=0.02)
    interval = sps.ttest_ind(men, women, equal_var=False).confidence_interval()
    assert interval.low > 0.1 * np.mean(women), (interval, men, women)
