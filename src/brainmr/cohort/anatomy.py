"""The demo's anatomy model: the MNI152 2009 template head (nilearn) and the edits that make one
subject's anatomy from it; brainmr.cohort.synth samples that anatomy into a scan.

The template head is made once per process (cached): the skull-stripped template T1 is the brain;
shells at a given distance outside the brain mask make a CSF gap, a dark skull with a brighter
diploe, muscle, bright scalp fat and skin; the brainstem is extruded downwards as a neck. Each
subject then gets, deterministically from its random generator:

- AD atrophy scaled by ``atrophy``: dilated lateral ventricles, thinner cortex (cortical voxels
  within a depth of the CSF turn to CSF) and smaller hippocampi (the same erosion inside two
  ellipsoids around the hippocampi). CN heads get only a small normal variation of ventricle size;
  an AD and a CN head of the same seed differ only by the atrophy.
- with ``age`` and ``sex`` given (the collection table's): ageing past REFERENCE_AGE widens the
  ventricles (faster in AD) and the sulci, and the whole head is scaled by SEX_SCALE (men's
  larger; sex_scaling, applied when the head is sampled); without them the head is exactly the
  ageless, sexless one. Neither draws a random number: the same seed gives the same subject
  whatever its age and sex.
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from brainmr.preprocess.template import load_template, load_tissue_map

NECK_MM = 24  # the template stops at z = -72 mm; the canvas adds this much neck below
CSF = 0.15  # T1 intensity of CSF (template scale: white matter ~0.87)
# Intensity outside the brain as a function of the distance to the brain (mm): CSF, inner table,
# diploe, outer table, muscle, fat, skin, air.
SHELL_MM = np.array(
    [0.0, 2.0, 2.8, 3.8, 4.8, 6.0, 7.0, 8.0, 9.0, 9.8, 10.6, 13.0, 13.8, 14.8, 15.6]
)
SHELL_T1 = np.array(
    [CSF, CSF, 0.03, 0.03, 0.3, 0.3, 0.03, 0.03, 0.35, 0.35, 0.95, 0.95, 0.5, 0.5, 0]
)
HEAD_CENTRE_MM = np.array([0.0, -17.0, 12.0])  # MNI point placed at the scanner's isocentre
HIPPOCAMPUS_MM = [np.array([-27.0, -24.0, -13.0]), np.array([27.0, -24.0, -13.0])]
HIPPOCAMPUS_AXES_MM = np.array([8.0, 17.0, 9.0])
# Atrophy at strength 1 (mm): ventricle dilation, cortical thinning, hippocampal erosion.
VENTRICLE_MM, CORTEX_MM, HIPPOCAMPUS_EROSION_MM = 3.0, 1.0, 2.0
GROUP_ATROPHY = {"CN": 0.0, "MCI": 0.5, "AD": 1.0}
# Age: the template anatomy stands for REFERENCE_AGE (the demo's youngest); edits only turn tissue
# into CSF, so younger subjects keep it unchanged.
REFERENCE_AGE = 60.0
AGE_RANGE = (18.0, 110.0)  # adult ages; anything else is a data error, not a subject
# 1.5 mm more ventricle reach over the demo's 60-89 years: clearly visible, yet half of the
# full AD dilation (VENTRICLE_MM), so age does not mimic AD.
AGE_VENTRICLE_MM_PER_YEAR = 0.05
# 0.45 mm of cortex over 60-89 years: healthy cortical thinning is ~0.01-0.02 mm a year.
AGE_CORTEX_MM_PER_YEAR = 0.015
# Ventricles widen 1.5x as fast with age at full AD atrophy (MCI half way): faster in AD.
AD_AGE_FACTOR = 1.5
# Linear head size about HEAD_CENTRE_MM: men's brains ~(1.03/0.97)^3 = 1.2x women's in volume
# (somewhat above the ~1.1-1.15x measured, so that the signal is clear).
SEX_SCALE = {"F": 0.97, "M": 1.03}


@dataclass(frozen=True)
class Edit:
    """Voxels (flat canvas indices) that an atrophy process may turn into CSF, with the distance
    (mm) that decides how soon: a voxel turns when the atrophy's reach exceeds it."""

    index: np.ndarray
    distance: np.ndarray
    weight: np.ndarray  # taper in [0, 1]


@dataclass(frozen=True)
class Anatomy:
    brain: np.ndarray  # canvas T1 inside the brain (and neck), 0 outside
    mask: np.ndarray  # true brain mask on the canvas (uint8)
    shell_index: np.ndarray  # flat canvas indices outside the brain, near enough to hold tissue
    shell_distance: np.ndarray  # their distance to the brain (mm)
    ventricles: Edit
    cortex: Edit  # cortical grey matter by its depth from the nearest CSF (sulci widen)
    surface: Edit  # the brain's outer layers by their depth from the outside (the brain shrinks)
    hippocampi: Edit
    affine: np.ndarray  # canvas voxel -> MNI mm


def world_grid(shape: tuple[int, ...], affine: np.ndarray) -> tuple[np.ndarray, ...]:
    """Broadcastable world coordinates (x, y, z) of a grid's voxels; an axis that does not
    move a coordinate stays a singleton (axis-aligned grids cost three 1-D arrays)."""
    axes = np.ix_(*[np.arange(n, dtype=np.float32) for n in shape])
    coords = []
    for r in range(3):
        value = np.full((1, 1, 1), affine[r, 3], dtype=np.float32)
        for c in range(3):
            if affine[r, c] != 0:
                value = value + np.float32(affine[r, c]) * axes[c]
        coords.append(value)
    return tuple(coords)


def _lateral_ventricles(t1: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The lateral ventricles: the two largest dark components off the midline in a central box
    (|x| < 30, -50 < y < 35, -5 < z < 40 mm) of an axis-aligned 1 mm canvas."""
    lo = np.round(np.linalg.solve(affine[:3, :3], np.array([-30, -50, -5]) - affine[:3, 3]))
    hi = np.round(np.linalg.solve(affine[:3, :3], np.array([30, 35, 40]) - affine[:3, 3]))
    box = tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi, strict=True))
    dark = (t1[box] < 0.4) & ndi.binary_erosion(mask, iterations=5)[box]
    labels, n = ndi.label(dark)
    index = np.arange(1, n + 1)
    sizes = ndi.sum_labels(dark, labels, index=index)
    x_mm = [
        affine[0, 0] * (c[0] + box[0].start) + affine[0, 3]
        for c in ndi.center_of_mass(dark, labels, index)
    ]
    lateral = [int(index[i]) for i in np.argsort(sizes)[::-1] if abs(x_mm[i]) > 5][:2]
    ventricles = np.zeros(t1.shape, dtype=bool)
    ventricles[box] = np.isin(labels, lateral)
    return ventricles


def _crop(coord: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """A box of a broadcastable coordinate array (singleton axes stay singletons)."""
    return coord[tuple(s if n > 1 else slice(None) for s, n in zip(box, coord.shape, strict=True))]


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """The bounding box of a mask's True voxels plus ``margin``, clipped to the array. From the
    mask's projections on each axis (not np.argwhere: no index list of every voxel)."""
    box = []
    for axis, n in enumerate(mask.shape):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(max(int(hit[0]) - margin, 0), min(int(hit[-1]) + margin + 1, n)))
    return tuple(box)


def _flat(box: tuple[slice, ...], local: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Flat canvas indices of the True voxels of ``local`` (a boolean array over ``box``)."""
    coords = np.nonzero(local)
    return np.ravel_multi_index(
        tuple(c + s.start for c, s in zip(coords, box, strict=True)), shape
    ).astype(np.int64)


@functools.lru_cache(maxsize=1)
def template_anatomy() -> Anatomy:
    """The template head on a canvas = template grid + NECK_MM below (computed once per process)."""
    tpl = load_template()
    nx, ny, nz = tpl.t1.shape
    shape = (nx, ny, nz + NECK_MM)
    affine = tpl.affine.copy()
    affine[2, 3] -= NECK_MM
    xyz = world_grid(shape, affine)

    mask = np.zeros(shape, dtype=bool)
    mask[..., NECK_MM:] = tpl.mask
    brain = np.zeros(shape, dtype=np.float32)
    brain[..., NECK_MM:] = np.where(tpl.mask, tpl.t1, 0)
    # Neck: the lowest template slice (brainstem) extruded downwards; not part of the true brain.
    body = mask.copy()
    body[..., :NECK_MM] = tpl.mask[..., :1]
    brain[..., :NECK_MM] = np.where(tpl.mask[..., :1], tpl.t1[..., :1], 0)

    # Distance outside the body at 2 mm (cheap), trilinearly upsampled: shells are smooth anyway.
    # Every canvas size is odd, so the [::2] grid's corners coincide with the canvas corners.
    coarse = ndi.distance_transform_edt(~body[::2, ::2, ::2], sampling=2.0).astype(np.float32)
    outside = ndi.zoom(coarse, np.divide(shape, coarse.shape), order=1)  # corner-aligned
    shell = ~body & (outside < SHELL_MM[-1] * 1.2)
    shell_index = np.flatnonzero(shell)
    shell_distance = np.maximum(outside.ravel()[shell_index], 0.5)

    tissue = mask & (brain >= 0.4)  # not CSF
    box = _bbox(mask, 2)
    depth = ndi.distance_transform_edt(tissue[box]).astype(np.float32)  # to the nearest CSF
    surface = ndi.distance_transform_edt(mask[box]).astype(np.float32)  # to the outside

    vent = _lateral_ventricles(brain, mask, affine)
    vbox = _bbox(vent, 12)
    vent_distance = ndi.distance_transform_edt(~vent[vbox]).astype(np.float32)
    # keep the septum pellucidum: the two ventricles grow apart, never into one another
    near = (vent_distance <= 10) & mask[vbox] & ~vent[vbox] & (np.abs(_crop(xyz[0], vbox)) > 1.0)
    ventricles = Edit(
        _flat(vbox, near, shape), vent_distance[near], np.ones(int(near.sum()), np.float32)
    )

    gm = np.zeros(shape, dtype=np.float32)
    gm[..., NECK_MM:] = load_tissue_map("gm")
    cortical = (gm[box] > 0.3) & (depth <= 4) & tissue[box]
    cortex = Edit(
        _flat(box, cortical, shape), depth[cortical], np.ones(int(cortical.sum()), np.float32)
    )
    outer = mask[box] & (surface <= 4)
    outer_layers = Edit(
        _flat(box, outer, shape), surface[outer], np.ones(int(outer.sum()), np.float32)
    )

    radius = np.full(depth.shape, np.inf, dtype=np.float32)  # ellipsoid radius, 1 on the surface
    for centre in HIPPOCAMPUS_MM:
        r2 = sum(
            ((_crop(c, box) - m) / a) ** 2
            for c, m, a in zip(xyz, centre, HIPPOCAMPUS_AXES_MM, strict=True)
        )
        radius = np.minimum(radius, np.sqrt(r2))
    hippo = (radius < 1) & tissue[box] & (depth <= 6)
    taper = np.clip(1.5 * (1 - radius[hippo] ** 2), 0, 1)  # fades out at the ellipsoid's edge
    hippocampi = Edit(_flat(box, hippo, shape), depth[hippo], taper.astype(np.float32))

    for array in (brain, shell_index, shell_distance):
        array.setflags(write=False)
    return Anatomy(
        brain=brain,
        mask=mask.astype(np.uint8),
        shell_index=shell_index,
        shell_distance=shell_distance,
        ventricles=ventricles,
        cortex=cortex,
        surface=outer_layers,
        hippocampi=hippocampi,
        affine=affine,
    )


def check_age(age: float | None) -> float | None:
    """A finite adult age (AGE_RANGE) as a float, or None (no ageing)."""
    if age is None:
        return None
    if isinstance(age, bool) or not isinstance(age, numbers.Real):
        raise ValueError(f"age must be a number of years, got {age!r}")
    if not (np.isfinite(age) and AGE_RANGE[0] <= age <= AGE_RANGE[1]):
        raise ValueError(f"age must be finite and within {AGE_RANGE} years, got {age!r}")
    return float(age)


def sex_scaling(sex: str | None) -> np.ndarray:
    """4x4 map from a subject's head (mm) to the template (MNI mm): sampling the template
    through it scales the head by SEX_SCALE[sex] about HEAD_CENTRE_MM. Identity for None."""
    if sex is None:
        return np.eye(4)
    if sex not in SEX_SCALE:
        raise ValueError(f"unknown sex {sex!r}: expected one of {sorted(SEX_SCALE)}")
    scaling = np.eye(4)
    scaling[:3, :3] /= SEX_SCALE[sex]
    scaling[:3, 3] = HEAD_CENTRE_MM - HEAD_CENTRE_MM / SEX_SCALE[sex]
    return scaling


def _apply_edit(canvas: np.ndarray, edit: Edit, reach_mm: float) -> np.ndarray:
    """Turn the edit's voxels within ``reach_mm`` into CSF (partial volume at the border).
    Distances are voxel-centre distances (EDT), so a voxel spans [distance - 1, distance] mm
    from the border. Returns each edit voxel's CSF fraction."""
    fraction = np.clip(reach_mm - edit.distance + 1.0, 0, 1) * edit.weight
    flat = canvas.reshape(-1)
    flat[edit.index] += fraction * (CSF - flat[edit.index])
    return fraction


def subject_canvas(
    anatomy: Anatomy, rng: np.random.Generator, atrophy: float, age: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The subject's head and true brain mask on the template canvas; ``atrophy`` is the AD
    strength (the group's share of it times the demo's atrophy), ``age`` adds ageing (None:
    none). Sex does not change the canvas: its scale is applied when sampling (sex_scaling)."""
    age = check_age(age)
    canvas = anatomy.brain.copy()
    thickness = rng.uniform(0.85, 1.2)  # skull and scalp thickness
    canvas.reshape(-1)[anatomy.shell_index] = np.interp(
        anatomy.shell_distance / thickness, SHELL_MM, SHELL_T1
    )
    normal_ventricles = rng.uniform(0.0, 1.0)  # mm; ageing variation present in every group
    severity = rng.uniform(0.7, 1.3)  # how far along the disease this subject is
    ad = atrophy * severity
    ventricle_mm, cortex_mm = normal_ventricles + ad * VENTRICLE_MM, ad * CORTEX_MM
    if age is not None:  # (kept out of the sums otherwise: the ageless head stays bit-identical)
        years = max(age - REFERENCE_AGE, 0.0)
        ventricle_mm += AGE_VENTRICLE_MM_PER_YEAR * years * (1 + (AD_AGE_FACTOR - 1) * atrophy)
        cortex_mm += AGE_CORTEX_MM_PER_YEAR * years
    _apply_edit(canvas, anatomy.ventricles, ventricle_mm)
    _apply_edit(canvas, anatomy.cortex, cortex_mm)
    shrunk = _apply_edit(canvas, anatomy.surface, cortex_mm)
    _apply_edit(canvas, anatomy.hippocampi, ad * HIPPOCAMPUS_EROSION_MM)
    mask = anatomy.mask.copy()
    # tissue lost at the outer surface leaves the brain: that CSF is outside the brain mask
    mask.reshape(-1)[anatomy.surface.index[shrunk > 0.5]] = 0
    return canvas, mask
