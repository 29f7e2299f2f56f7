"""The sentences below Table 1 follow their intervals: evaluate.findings decides on constructed
cases whose answer is known, report.findings words them, each with the sentence it must and must
not produce."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainmr.conditions import conditions_from
from brainmr.evaluate.table1.findings import ceiling_shifts, judge_separation
from brainmr.report.findings import (
    anatomy_sentences,
    ceiling_sentences,
    separation_sentences,
)

CONDITIONS = conditions_from(
    {"brain": {"AD": "AD, a MRI brain", "CN": "CN, a MRI brain", "label": ""}}
)


def by_seed(ad_cnn, cn_cnn, ad_lik=(0.5, 0.6, 0.4), cn_lik=(0.5, 0.4, 0.6), inside=True):
    """Per-seed rows of condition "brain" with the given shares called AD (n = 100)."""
    rows = []
    for seed in range(3):
        for group, cnn, lik in (("AD", ad_cnn, ad_lik), ("CN", cn_cnn, cn_lik)):
            called_ad_by_lik = round(100 * lik[seed])
            rows.append(
                {
                    "seed": seed,
                    "condition": "brain",
                    "group": group,
                    "n": 100,
                    "predicted_AD": round(100 * cnn[seed]),
                    "misclassified": 100 - called_ad_by_lik if group == "AD" else called_ad_by_lik,
                    "cnn_interpretable": inside,
                }
            )
    return pd.DataFrame(rows)


def morphometry(per_seed=(30.0, 50.0, 40.0)):
    rows = [
        {"measure": "ventricle_area_mm2", "source": "brain", "seed": s, "difference": d}
        for s, d in enumerate(per_seed)
    ]
    return pd.DataFrame(rows)


def test_a_judge_separates_only_with_an_interval_off_zero_and_spread():
    clear = judge_separation(by_seed((0.8, 0.7, 0.9), (0.1, 0.2, 0.15)), morphometry(), "brain")
    assert clear["cnn"]["separates"] and clear["morphometry"]["separates"]
    assert not clear["likelihood"]["separates"]  # same shares in both classes: the truth
    # the same shift in every seed: an interval of zero width is not knowledge
    flat = judge_separation(
        by_seed((0.02, 0.02, 0.02), (0.01, 0.01, 0.01)), morphometry((5.0, 5.0, 5.0)), "brain"
    )
    assert not flat["cnn"]["separates"] and flat["cnn"]["note"] == "no spread between seeds"
    assert not flat["morphometry"]["separates"]
    # a CNN withheld by the guard is no judge, however far apart its counts are
    withheld = judge_separation(
        by_seed((0.8, 0.7, 0.9), (0.1, 0.2, 0.15), inside=False), morphometry(), "brain"
    )
    assert not withheld["cnn"]["separates"] and not withheld["cnn"]["interpretable"]


def test_separation_sentences_name_only_what_the_intervals_show():
    clear = judge_separation(by_seed((0.8, 0.7, 0.9), (0.1, 0.2, 0.15)), morphometry(), "brain")
    line = separation_sentences([clear], CONDITIONS)[0]
    assert "the CNN and anatomy tell its AD images from its CN images" in line
    assert "the likelihood verdict does not: the judges disagree" in line
    withheld = judge_separation(
        by_seed((0.8, 0.7, 0.9), (0.1, 0.2, 0.15), inside=False), morphometry(), "brain"
    )
    line = separation_sentences([withheld], CONDITIONS)[0]
    assert "anatomy tells its AD images" in line and "the CNN withheld: †" in line
    assert "the CNN and anatomy tell" not in line and "the CNN 0.65 [0.32, 0.98] †" in line
    flat = judge_separation(
        by_seed((0.02, 0.02, 0.02), (0.01, 0.01, 0.01)), morphometry((5.0, 5.0, 5.0)), "brain"
    )
    line = separation_sentences([flat], CONDITIONS)[0]
    assert "no judge tells" in line and "[0.01, 0.01]" not in line
    assert "the CNN 0.01 no spread between seeds" in line


def scores(shift_mm2: float, flip_cnn: bool = False) -> list[pd.DataFrame]:
    """Two seeds' scores: 8 held-out reals per class and the same subjects through a
    bottleneck that changes the ventricle area by ``shift_mm2`` (and, if asked, turns every
    image the CNN calls AD into CN)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(2):
        rows = []
        for group in ("AD", "CN"):
            for i in range(8):
                subject = f"{group}{i}"
                area = (400.0 if group == "AD" else 250.0) + rng.normal(0, 20)
                called = "AD" if group == "AD" else "CN"
                lik = (-10.0, -12.0) if group == "AD" else (-12.0, -10.0)
                for condition, value, predicted in (
                    ("real", area, called),
                    ("ceiling_vae64", area + shift_mm2, "CN" if flip_cnn else called),
                ):
                    rows.append(
                        {
                            "condition": condition,
                            "group": group,
                            "subject": subject,
                            "file": f"{condition}_{subject}.png",
                            "outlier": False,
                            "predicted": predicted,
                            "loglik_AD": lik[0],
                            "loglik_CN": lik[1],
                            "ventricle_area_mm2": value,
                        }
                    )
        out.append(pd.DataFrame(rows))
    return out


def references_and_seeds(shift_mm2: float, flip_cnn: bool = False):
    """The references' seed-free table (the CNN columns of none) and the two seeds' tables."""
    seeds = scores(shift_mm2, flip_cnn)
    return seeds[0].drop(columns="predicted"), seeds


SUMMARY = pd.DataFrame(
    [
        {"condition": c, "group": g, "cnn_interpretable": True}
        for c in ("real", "ceiling_vae64")
        for g in ("AD", "CN")
    ]
)


def test_the_bottleneck_sentence_needs_a_shift_whose_interval_excludes_zero():
    none = ceiling_shifts(SUMMARY, *references_and_seeds(0.0), n_boot=500)
    assert all(r["moved"] == [] for r in none) and none[0]["n_pairs"] == 8
    line = ceiling_sentences(none, CONDITIONS)[0]
    assert "No judge moved beyond its interval" in line and "is the bottleneck's" not in line
    shrunk = ceiling_shifts(SUMMARY, *references_and_seeds(-100.0, True), n_boot=500)
    ad = shrunk[0]
    assert ad["group"] == "AD" and ad["moved"] == ["cnn", "morphometry"]
    assert ad["morphometry_shift"] == pytest.approx(-100.0)
    assert ad["cnn_shift"] == pytest.approx(-1.0)
    line = ceiling_sentences(shrunk, CONDITIONS)[0]
    assert "That much of what the CNN and anatomy say of generated images" in line
    assert "the likelihood verdict" in line and "likelihood verdict say" not in line
    assert "407 → 307 mm² (-100 mm² [-100, -100])" in line
    out = SUMMARY.assign(cnn_interpretable=False)
    withheld = ceiling_shifts(out, *references_and_seeds(-100.0, True), n_boot=500)
    assert withheld[0]["moved"] == ["morphometry"]  # a CNN out of distribution is no judge


def anatomy_row(source, difference, low, high, **more):
    return {
        "source": source,
        "difference": difference,
        "low": low,
        "high": high,
        "interval": more.pop("interval", "t 95% across seeds"),
        "fraction_reproduced": np.nan,
        "fraction_low": np.nan,
        "fraction_high": np.nan,
        "fraction_interval": "",
        "fraction_status": "",
    } | more


def test_anatomy_sentences_follow_the_sign_and_the_interval():
    more = anatomy_row("held-out reals", 150.0, 80.0, 220.0, interval="Welch 95% across subjects")
    less = anatomy_row("held-out reals", -150.0, -220.0, -80.0, interval="Welch")
    unknown = anatomy_row("held-out reals", 6.0, -328.0, 340.0, interval="Welch")
    assert "have 150 mm² more central CSF" in anatomy_sentences([more], CONDITIONS)[0]
    assert "have 150 mm² less central CSF" in anatomy_sentences([less], CONDITIONS)[0]
    line = anatomy_sentences([unknown], CONDITIONS)[0]
    assert "no established difference" in line and "more central CSF" not in line
    share = anatomy_row(
        "brain",
        60.0,
        20.0,
        100.0,
        fraction_reproduced=0.4,
        fraction_low=0.1,
        fraction_high=0.8,
        fraction_interval="Fieller 95%",
    )
    line = anatomy_sentences([share], CONDITIONS)[0]
    assert "40% of the real difference reproduced [10%, 80%] (Fieller 95%)" in line
    no_share = anatomy_row(
        "brain", 60.0, 20.0, 100.0, fraction_status="real difference not established"
    )
    line = anatomy_sentences([no_share], CONDITIONS)[0]
    assert "real difference not established" in line and "reproduced" not in line
    ceiling = anatomy_row("ceiling_vae64", 90.0, 40.0, 140.0, interval="Welch 95% across images")
    line = anatomy_sentences([ceiling], CONDITIONS)[0]
    assert "Welch 95% across images" in line and "across seeds" not in line
