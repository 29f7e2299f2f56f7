"""The morphometric judge: known answers on a drawn slice, AD vs CN on demo anatomy, the
differences table and its report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from brainmr import SLICE_SIZE
from brainmr.evaluate.images import rescale_foreground as evaluation_normalise
from brainmr.evaluate.judges.morphometry import (
    HELD_OUT,
    MEASURE_LABELS,
    MEASURES,
    morphometry_table,
    slice_morphometry,
)
from brainmr.evaluate.stats.ratio import fieller_ratio
from brainmr.evaluate.table1.differences import (
    class_difference,
    morphometry_differences,
    per_image_measures,
)
from brainmr.report.morphometry import morphometry_figure, morphometry_markdown

WHITE, GREY, CSF = 0.7, 0.45, 0.1
CENTRE, SEMI_ROWS, SEMI_COLS = (80, 80), 62.0, 66.0
VENTRICLES = [(slice(70, 80), slice(62, 74)), (slice(70, 80), slice(86, 98))]  # 2 x 10 x 12 px
SULCI = [  # thin dark lines from the surface inwards: (rows, cols)
    (slice(18, 34), slice(80, 82)),  # the interhemispheric fissure, 16 px deep at the midline
    (slice(74, 80), slice(14, 20)),  # lateral, 6 px deep
    (slice(74, 80), slice(141, 147)),
    (slice(125, 145), slice(60, 62)),  # 2 px wide, cut off where the brain ends
]


def draw_slice(extra_rows: int = 0, noise: float = 0.01) -> tuple[np.ndarray, dict[str, float]]:
    """An ellipse brain (white matter, a 4 px grey cortex), two ventricles near the midline,
    sulci at the surface; with the drawn areas (px) and CSF fraction."""
    rows, cols = np.mgrid[:SLICE_SIZE, :SLICE_SIZE]
    radius = np.sqrt(((rows - CENTRE[0]) / SEMI_ROWS) ** 2 + ((cols - CENTRE[1]) / SEMI_COLS) ** 2)
    brain = radius <= 1
    image = np.where(brain, WHITE, 0.0)
    image[brain & (radius > 1 - 4 / SEMI_ROWS)] = GREY
    csf = np.zeros_like(brain)
    for r, c in VENTRICLES:
        csf[r.start - extra_rows : r.stop, c] = True
    ventricle_px = int(csf.sum())
    for r, c in SULCI:
        csf[r, c] = True
    csf &= brain
    image[csf] = CSF
    image = image + np.random.default_rng(0).normal(0, noise, image.shape) * brain
    truth = {
        "brain_px": int(brain.sum()),
        "ventricle_px": ventricle_px,
        "csf_fraction": float(csf.sum() / brain.sum()),
    }
    return np.clip(image, 0, 1), truth


def test_drawn_slice_known_areas():
    image, truth = draw_slice()
    m = slice_morphometry(image)
    assert set(m) == set(MEASURES)
    assert m["brain_area_mm2"] == pytest.approx(truth["brain_px"], rel=0.03)
    assert m["ventricle_area_mm2"] == pytest.approx(truth["ventricle_px"], rel=0.10)
    assert m["csf_fraction"] == pytest.approx(truth["csf_fraction"], abs=0.02)
    assert m["csf_fraction"] > 0.01  # the known answer is not trivially 0


def test_sulci_at_the_surface_are_not_ventricles():
    image, truth = draw_slice()
    no_ventricles = image.copy()
    for r, c in VENTRICLES:
        no_ventricles[r, c] = WHITE
    m = slice_morphometry(no_ventricles)
    assert m["ventricle_area_mm2"] == 0  # the deep midline fissure and the sulci do not count
    assert m["csf_fraction"] > 0  # ... though they are CSF


def test_a_one_pixel_csf_channel_to_the_surface_keeps_the_ventricle():
    """Widened sulci can touch a ventricle through a 1-px CSF line; the ventricle stays (it
    would be lost as open to the surface if any dark path counted), the channel does not."""
    image, truth = draw_slice()
    image[75, 14:62] = CSF  # from the left ventricle to the lateral sulcus and the surface
    m = slice_morphometry(image)
    assert m["ventricle_area_mm2"] == pytest.approx(truth["ventricle_px"], rel=0.10)
    wide = image.copy()
    wide[74:77, 14:62] = CSF  # a 3-px passage joins it to the surface: a sulcus, not central
    assert slice_morphometry(wide)["ventricle_area_mm2"] < 0.6 * truth["ventricle_px"]


def test_areas_scale_with_the_pixel_spacing():
    image, _ = draw_slice()
    one, two = slice_morphometry(image, 1.0), slice_morphometry(image, 2.0)
    assert two["brain_area_mm2"] == pytest.approx(4 * one["brain_area_mm2"])
    assert two["ventricle_area_mm2"] == pytest.approx(4 * one["ventricle_area_mm2"], rel=0.05)
    assert two["csf_fraction"] == pytest.approx(one["csf_fraction"])


def test_enlarged_ventricles_add_their_area():
    extra = 5  # rows added above each 12 px wide ventricle: 2 x 5 x 12 = 120 px
    small, big = draw_slice()[0], draw_slice(extra_rows=extra)[0]
    grown = slice_morphometry(big)["ventricle_area_mm2"]
    grown -= slice_morphometry(small)["ventricle_area_mm2"]
    assert grown == pytest.approx(2 * extra * 12, rel=0.15)


def test_blank_nearly_blank_and_bad_inputs():
    blank = np.zeros((SLICE_SIZE, SLICE_SIZE))
    assert all(math.isnan(v) for v in slice_morphometry(blank).values())
    speck = blank.copy()
    speck[10:15, 10:15] = 0.8  # 25 px < 1% of the image
    assert all(math.isnan(v) for v in slice_morphometry(speck).values())
    with pytest.raises(ValueError, match="2-D"):
        slice_morphometry(np.zeros((2, SLICE_SIZE, SLICE_SIZE)))
    bad = draw_slice()[0]
    bad[5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        slice_morphometry(bad)
    table = morphometry_table(np.stack([draw_slice()[0], blank]))
    assert list(table.columns) == list(MEASURES) and len(table) == 2
    assert table.iloc[1].isna().all() and table.iloc[0].notna().all()


def demo_slice(group: str, seed: int) -> np.ndarray:
    """A demo subject's normalised centre coronal slice, as preprocessing would make it from a
    perfectly stripped and aligned scan: the canvas is the template grid plus NECK_MM below."""
    from brainmr.cohort.anatomy import GROUP_ATROPHY, NECK_MM, subject_canvas, template_anatomy
    from brainmr.preprocess.slicing import center_coronal_slice, scale_by_brain_percentile

    canvas, mask = subject_canvas(
        template_anatomy(), np.random.default_rng(seed), GROUP_ATROPHY[group]
    )
    inside = mask[..., NECK_MM:].astype(bool)
    aligned = np.where(inside, canvas[..., NECK_MM:], 0.0)
    image = scale_by_brain_percentile(
        center_coronal_slice(aligned, SLICE_SIZE), aligned[inside], 99.5
    )
    return evaluation_normalise(image)


def test_demo_ad_slices_have_larger_ventricles_and_more_csf():
    seeds = range(5)
    ad = morphometry_table(np.stack([demo_slice("AD", s) for s in seeds]))
    cn = morphometry_table(np.stack([demo_slice("CN", 100 + s) for s in seeds]))
    ventricles = class_difference(ad["ventricle_area_mm2"], cn["ventricle_area_mm2"])
    assert ventricles["low"] > 0, ventricles
    assert ventricles["n_AD"] == ventricles["n_CN"] == 5
    assert ad["csf_fraction"].mean() > cn["csf_fraction"].mean()


def test_class_difference_welch_and_nan():
    ad, cn = [5.0, 7.0, 9.0], [1.0, 2.0, 3.0, 4.0]
    out = class_difference(ad, cn)
    assert out["difference"] == pytest.approx(7.0 - 2.5)
    welch = sps.ttest_ind(ad, cn, equal_var=False)
    ci = welch.confidence_interval()
    assert (out["low"], out["high"]) == pytest.approx((ci.low, ci.high))
    assert out["p_value"] == pytest.approx(welch.pvalue)
    short = class_difference([1.0, np.nan], cn)
    assert math.isnan(short["difference"]) and short["n_AD"] == 1


def tables(real_ad: float = 20.0):
    """By-seed means of a set whose AD - CN is 5, 3, 4 over seeds 0-2, an ignored 'real' row,
    and reals with held-out AD - CN = real_ad - 10 and train AD - CN = 8."""
    rows = []
    for seed, ad in zip([0, 1, 2], [15.0, 13.0, 14.0], strict=True):
        rows += [
            {
                "seed": seed,
                "condition": "gen",
                "group": "AD",
                "n": 10,
                **dict.fromkeys(MEASURES, ad),
            },
            {
                "seed": seed,
                "condition": "gen",
                "group": "CN",
                "n": 10,
                **dict.fromkeys(MEASURES, 10.0),
            },
            {
                "seed": seed,
                "condition": "real",
                "group": "AD",
                "n": 4,
                **dict.fromkeys(MEASURES, 99.0),
            },
        ]
    reals = []
    for split, ad_values, cn_values in [
        ("test", [real_ad - 1, real_ad + 1], [9.0, 11.0]),
        ("train", [17.0, 19.0, 18.0], [9.0, 11.0, 10.0]),
    ]:
        for group, values in (("AD", ad_values), ("CN", cn_values)):
            for i, v in enumerate(values):
                reals.append(
                    {"subject": f"{split}{group}{i}", "group": group, "split": split}
                    | dict.fromkeys(MEASURES, v)
                )
    return pd.DataFrame(rows), pd.DataFrame(reals)


def welch_var(ad, cn) -> tuple[float, float]:
    ad, cn = np.asarray(ad, float), np.asarray(cn, float)
    va, vc = ad.var(ddof=1) / ad.size, cn.var(ddof=1) / cn.size
    return va + vc, (va + vc) ** 2 / (va**2 / (ad.size - 1) + vc**2 / (cn.size - 1))


def test_morphometry_differences_known_answers():
    by_seed, reals = tables()
    diffs = morphometry_differences(by_seed, reals, ["gen"])
    part = diffs[diffs["measure"] == "ventricle_area_mm2"].set_index(["source", "seed"])
    assert len(part) == 2 + 3 + 1 and set(diffs["measure"]) == set(MEASURES)
    held = part.loc[("held-out reals", "all")]
    assert held["difference"] == pytest.approx(10.0) and held["fraction_reproduced"] == 1.0
    welch = sps.ttest_ind([19.0, 21.0], [9.0, 11.0], equal_var=False).confidence_interval()
    assert (held["low"], held["high"]) == pytest.approx((welch.low, welch.high))
    assert held["interval"] == "Welch 95% across subjects"
    var_r, df_r = welch_var([19.0, 21.0], [9.0, 11.0])
    train = part.loc[("train reals", "all")]
    assert train["difference"] == pytest.approx(8.0)
    var_t, df_t = welch_var([17.0, 19.0, 18.0], [9.0, 11.0, 10.0])
    fieller = fieller_ratio(8.0, var_t, df_t, 10.0, var_r, df_r)
    assert train["fraction_reproduced"] == pytest.approx(0.8)
    assert (train["fraction_low"], train["fraction_high"]) == pytest.approx(
        (fieller["low"], fieller["high"])
    )
    for seed, fraction in zip([0, 1, 2], [0.5, 0.3, 0.4], strict=True):
        row = part.loc[("gen", seed)]
        assert row["fraction_reproduced"] == pytest.approx(fraction)
        assert row["AD_mean"] - row["CN_mean"] == pytest.approx(row["difference"])
        assert math.isnan(row["low"])
    across = part.loc[("gen", "all")]
    half = sps.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)  # seed differences 5, 3, 4: sd 1
    assert across["difference"] == pytest.approx(4.0) and across["n_seeds"] == 3
    assert (across["low"], across["high"]) == pytest.approx((4.0 - half, 4.0 + half))
    assert across["interval"] == "t 95% across seeds"
    # the share counts the real difference's uncertainty (Fieller), not the seeds' alone
    share = fieller_ratio(4.0, 1.0 / 3, 2, 10.0, var_r, df_r)
    assert across["fraction_reproduced"] == pytest.approx(0.4)
    assert (across["fraction_low"], across["fraction_high"]) == pytest.approx(
        (share["low"], share["high"])
    )
    assert across["fraction_interval"] == "Fieller 95%"


def test_zero_or_unestablished_real_difference_gives_no_share():
    by_seed, reals = tables(real_ad=10.0)
    diffs = morphometry_differences(by_seed, reals, ["gen"])
    gen = diffs[diffs["source"] == "gen"]
    assert gen["fraction_reproduced"].isna().all()
    assert np.isfinite(gen["difference"]).all()
    assert math.isnan(diffs[diffs["source"] == "train reals"]["fraction_reproduced"].iloc[0])
    across = gen[gen["seed"] == "all"]
    assert (across["fraction_status"] == "real difference not established").all()
    # the case: a held-out difference of ~6 mm² with an interval over [-328, 340]
    by_seed, reals = tables(real_ad=16.0)
    reals.loc[(reals["split"] == "test") & (reals["group"] == "AD"), MEASURES] = [
        [-150.0] * 3,
        [182.0] * 3,
    ]
    diffs = morphometry_differences(by_seed, reals, ["gen"])
    held = diffs[(diffs["source"] == "held-out reals")].iloc[0]
    assert held["low"] < 0 < held["high"] and held["difference"] == pytest.approx(6.0)
    gen = diffs[(diffs["source"] == "gen") & (diffs["seed"] == "all")].iloc[0]
    assert math.isnan(gen["fraction_reproduced"])
    assert gen["fraction_status"] == "real difference not established"


def test_outlier_reals_leave_the_held_out_difference_as_they_leave_the_sets():
    by_seed, reals = tables()
    reals.loc[reals["subject"] == "testAD0", MEASURES] = 500.0  # an outlier slice
    kept = morphometry_differences(by_seed, reals, ["gen"], held_out_outliers=["testAD0"])
    counted = morphometry_differences(by_seed, reals, ["gen"])

    def held(d):
        return d[(d["source"] == "held-out reals") & (d["measure"] == MEASURES[0])].iloc[0]

    assert held(kept)["AD_mean"] == pytest.approx(21.0)  # testAD1 alone
    assert held(counted)["AD_mean"] == pytest.approx((500.0 + 21.0) / 2)


def test_ceiling_rows_are_across_images_with_a_paired_share():
    """A ceiling set that halves each held-out subject's excess over 10: its AD - CN difference
    across images (Welch) and a share of exactly 0.5, whatever the resample (paired)."""
    rng = np.random.default_rng(0)
    subjects = [f"t{i}" for i in range(12)]
    groups = ["AD"] * 6 + ["CN"] * 6
    values = np.r_[rng.normal(30, 3, 6), rng.normal(10, 3, 6)]
    reals = pd.DataFrame({"subject": subjects, "group": groups, "split": "test"})
    reals = reals.assign(**{m: values for m in MEASURES})
    ceiling = pd.DataFrame(
        {"subject": subjects, "group": groups, "condition": "ceiling_vae64"}
    ).assign(**{m: 10 + (values - 10) / 2 for m in MEASURES})
    by_seed, _ = tables()
    diffs = morphometry_differences(by_seed, reals, ["gen"], ceilings=ceiling)
    row = diffs[(diffs["source"] == "ceiling_vae64") & (diffs["measure"] == MEASURES[2])].iloc[0]
    assert row["interval"] == "Welch 95% across images" and math.isnan(row["n_seeds"])
    expected = class_difference(ceiling[MEASURES[2]][:6], ceiling[MEASURES[2]][6:])
    assert row["difference"] == pytest.approx(expected["difference"])
    assert (row["low"], row["high"]) == pytest.approx((expected["low"], expected["high"]))
    assert row["fraction_reproduced"] == pytest.approx(0.5)
    assert (row["fraction_low"], row["fraction_high"]) == pytest.approx((0.5, 0.5))


def test_report_markdown_and_figure():
    by_seed, reals = tables()
    diffs = morphometry_differences(by_seed, reals, ["gen"])
    text = morphometry_markdown(diffs, {"gen": "generated (brain)"})
    assert text.count("### ") == len(MEASURES)
    assert "generated (brain)" in text and "40% [" in text and "80% [" in text
    assert "per seed: 50%, 30%, 40%" in text and "Fieller 95%" in text
    assert MEASURE_LABELS["ventricle_area_mm2"] in text
    rng = np.random.default_rng(1)
    per_image = pd.DataFrame(
        [
            {"source": source, "group": group} | {m: rng.uniform(1, 2) for m in MEASURES}
            for source in ("held-out reals", "gen")
            for group in ("AD", "CN")
            for _ in range(4)
        ]
    )
    fig = morphometry_figure(per_image, {"gen": "generated"}, "morphometry")
    try:
        assert len(fig.axes) == len(MEASURES)
        assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [
            "held-out reals",
            "generated",
        ]
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_per_image_measures_take_reference_sets_from_their_table_and_leave_out_outliers():
    """The references' table and two seeds' tables (each holding the references again, with
    that seed's CNN): the held-out reals and the ceiling set from the references' table, the
    generated sets of both seeds; outliers dropped; held-out reals first, as HELD_OUT."""

    def scores(seed: int) -> pd.DataFrame:
        rows = [
            ("gen", "AD", False),
            ("gen", "CN", True),
            ("ceiling_vae32", "AD", False),
            ("real", "AD", False),
            ("real", "CN", True),
            ("real", "CN", False),
        ]
        table = pd.DataFrame(rows, columns=["condition", "group", "outlier"])
        return table.assign(seed=seed, ventricle_area_mm2=np.arange(6) + 10.0 * seed)

    references = scores(0)
    references = references[~references["condition"].isin(["gen"])]
    per_image = per_image_measures(references, [scores(0), scores(1)])
    assert per_image["source"].tolist() == [HELD_OUT] * 2 + ["gen"] * 2 + ["ceiling_vae32"]
    assert per_image["seed"].tolist() == [0, 0, 0, 1, 0]
    assert per_image["ventricle_area_mm2"].tolist() == [3.0, 5.0, 0.0, 10.0, 2.0]
    assert not per_image["outlier"].any()
