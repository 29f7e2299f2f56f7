"""The real AD - CN differences of each morphometric measure (held-out and train reals), each
set's difference, and the share of the real one a set reproduces, with intervals that count the
real difference's own uncertainty: Fieller's for the generated sets (seeds against subjects),
a paired bootstrap over subjects for the ceiling sets (the same subjects through the
bottleneck). A share is given only where the real difference is established (its interval
excludes 0): dividing by a difference that may be 0 gives any number at all.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from brainmr import GROUPS
from brainmr.conditions import REAL_CONDITION
from brainmr.evaluate.judges.morphometry import HELD_OUT, MEASURES, REAL_SPLITS, TRAIN
from brainmr.evaluate.judges.outliers import is_generated
from brainmr.evaluate.stats.intervals import mean_interval
from brainmr.evaluate.stats.ratio import fieller_ratio
from brainmr.io import as_bool, require_columns, require_groups

NAN = math.nan
# What each interval of the differences table is (the report prints it beside the figures).
T_SEEDS, WELCH_SUBJECTS, WELCH_IMAGES = (
    "t 95% across seeds",
    "Welch 95% across subjects",
    "Welch 95% across images",
)
FIELLER, PAIRED_BOOTSTRAP = "Fieller 95%", "bootstrap 95% over subjects, paired"
NOT_ESTABLISHED = "real difference not established"
N_BOOT = 2000  # resamples of the paired bootstrap of a ceiling set's share


def class_difference(ad, cn, confidence: float = 0.95) -> dict[str, float]:
    """AD minus CN difference of means of independent images or subjects, with Welch's t
    interval (unequal variances: generated and real sets differ in spread), its variance
    (``var``: the squared standard error) and Welch-Satterthwaite ``df``. NaN with fewer than
    two finite values on a side."""
    ad = np.asarray(ad, dtype=float).ravel()
    cn = np.asarray(cn, dtype=float).ravel()
    ad, cn = ad[np.isfinite(ad)], cn[np.isfinite(cn)]
    out = {"difference": NAN, "low": NAN, "high": NAN, "n_AD": int(ad.size)}
    out |= {"n_CN": int(cn.size), "p_value": NAN, "var": NAN, "df": NAN}
    if ad.size < 2 or cn.size < 2:
        return out
    out["difference"] = float(ad.mean() - cn.mean())
    out["var"] = float(ad.var(ddof=1) / ad.size + cn.var(ddof=1) / cn.size)
    if out["var"] == 0:  # no spread: the t statistic is undefined
        return out
    test = sps.ttest_ind(ad, cn, equal_var=False)
    ci = test.confidence_interval(confidence)
    out.update(low=float(ci.low), high=float(ci.high), p_value=float(test.pvalue))
    return out | {"df": float(test.df)}


def established(difference: dict) -> bool:
    """Whether a real AD - CN difference is known to be nonzero: its interval excludes 0. A
    share of it "reproduced" means nothing otherwise."""
    low, high = difference["low"], difference["high"]
    return bool(np.isfinite(low) and np.isfinite(high) and (low > 0 or high < 0))


def _row(measure: str, source: str, seed, ad: float, cn: float, **values) -> dict:
    row = {
        "measure": measure,
        "source": source,
        "seed": seed,
        "AD_mean": ad,
        "CN_mean": cn,
        "difference": NAN,
        "low": NAN,
        "high": NAN,
        "interval": "",
        "fraction_reproduced": NAN,
        "fraction_low": NAN,
        "fraction_high": NAN,
        "fraction_interval": "",
        "fraction_status": "",
        "n_seeds": NAN,
        "n_AD": NAN,
        "n_CN": NAN,
    }
    row.update(values)
    return row


def _fraction(ratio: dict, how: str, target_ok: bool) -> dict:
    if not target_ok:
        return {"fraction_status": NOT_ESTABLISHED}
    if not ratio["established"]:
        return {"fraction_status": "interval unbounded at 95%"}
    return {
        "fraction_reproduced": ratio["ratio"],
        "fraction_low": ratio["low"],
        "fraction_high": ratio["high"],
        "fraction_interval": how,
    }


def paired_bootstrap_ratio(
    through: dict[str, np.ndarray],
    real: dict[str, np.ndarray],
    n_boot: int,
    seed: int,
    confidence: float = 0.95,
) -> dict:
    """AD - CN difference of ``through`` over that of ``real``, where row i of each class is
    the same subject (a ceiling image and its source slice): a percentile bootstrap that
    resamples subjects within each class, both differences from the same resample."""
    out = {"ratio": NAN, "low": NAN, "high": NAN, "established": False}
    if min(len(real[g]) for g in GROUPS) < 2:
        return out
    rng = np.random.default_rng(seed)
    idx = {g: rng.integers(0, len(real[g]), size=(n_boot, len(real[g]))) for g in GROUPS}

    def diff(values: dict[str, np.ndarray], resampled: bool) -> np.ndarray | float:
        if not resampled:
            return float(values["AD"].mean() - values["CN"].mean())
        return values["AD"][idx["AD"]].mean(1) - values["CN"][idx["CN"]].mean(1)

    with np.errstate(divide="ignore", invalid="ignore"):
        boot = diff(through, True) / diff(real, True)
    tail = (1 - confidence) / 2
    low, high = np.nanquantile(boot, [tail, 1 - tail])
    ratio = _ratio(diff(through, False), diff(real, False))
    return {"ratio": ratio, "low": float(low), "high": float(high), "established": True}


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN (not inf) when the denominator is 0 or not finite."""
    if not (np.isfinite(numerator) and np.isfinite(denominator)) or denominator == 0:
        return NAN
    return float(numerator / denominator)


def _real_rows(measure: str, reals: pd.DataFrame, outliers: set) -> tuple[list[dict], dict]:
    """The held-out (outlier subjects left out, as in every set mean) and train reals' AD - CN
    difference; the train reals' share of the held-out one (Fieller)."""
    rows, real = [], {}
    for source, split in REAL_SPLITS.items():
        part = reals[reals["split"] == split]
        if source == HELD_OUT:
            part = part[~part["subject"].astype(str).isin(outliers)]
        values = {g: part.loc[part["group"] == g, measure].to_numpy(float) for g in GROUPS}
        real[source] = class_difference(values["AD"], values["CN"])
        means = {
            g: float(np.nanmean(v)) if np.isfinite(v).any() else NAN for g, v in values.items()
        }
        rows.append(
            _row(measure, source, "all", means["AD"], means["CN"], interval=WELCH_SUBJECTS)
            | {k: real[source][k] for k in ("difference", "low", "high", "n_AD", "n_CN")}
        )
    target = real[HELD_OUT]
    ok = established(target)
    rows[0] |= {"fraction_reproduced": 1.0} if ok else {"fraction_status": NOT_ESTABLISHED}
    train = real[TRAIN]
    ratio = fieller_ratio(
        train["difference"],
        train["var"],
        train["df"],
        target["difference"],
        target["var"],
        target["df"],
    )
    rows[1] |= _fraction(ratio, FIELLER, ok)
    return rows, target


def _seed_rows(measure: str, name: str, part: pd.DataFrame, target: dict) -> list[dict]:
    """One generated set: each seed's AD - CN difference of set means, then across seeds (t
    interval) with the share of the held-out difference (Fieller: the denominator's own
    uncertainty counts; the seeds' spread is the numerator's)."""
    ok = established(target)
    table = part.pivot_table(index="seed", columns="group", values=measure, aggfunc="mean")
    table = table.reindex(columns=list(GROUPS))
    differences = (table["AD"] - table["CN"]).to_numpy(float)
    rows = [
        _row(measure, name, int(seed), float(r["AD"]), float(r["CN"]), n_seeds=1)
        | {"difference": d, "fraction_reproduced": _ratio(d, target["difference"]) if ok else NAN}
        for (seed, r), d in zip(table.iterrows(), differences, strict=True)
    ]
    across = mean_interval(differences)
    ratio = fieller_ratio(
        across["mean"],
        across["sd"] ** 2 / max(across["n"], 1),
        across["n"] - 1,
        target["difference"],
        target["var"],
        target["df"],
    )
    rows.append(
        _row(measure, name, "all", float(table["AD"].mean()), float(table["CN"].mean()))
        | {k: across[k] for k in ("low", "high")}
        | {"difference": across["mean"], "n_seeds": across["n"], "interval": T_SEEDS}
        | _fraction(ratio, FIELLER, ok)
    )
    return rows


def _ceiling_row(
    measure: str, name: str, images: pd.DataFrame, reals: pd.DataFrame, target: dict, seed: int
) -> dict:
    """One ceiling set (held-out reals through the bottleneck, outliers left out): its AD - CN
    difference across images (Welch), and its share of the held-out difference by a bootstrap
    over the subjects kept in both, pairing each image with its source slice."""
    values = {g: images.loc[images["group"] == g, measure].to_numpy(float) for g in GROUPS}
    diff = class_difference(values["AD"], values["CN"])
    held = reals[reals["split"] == REAL_SPLITS[HELD_OUT]]
    held = held.set_index(held["subject"].astype(str))
    pairs = images.assign(subject=images["subject"].astype(str))
    pairs = pairs[pairs["subject"].isin(held.index)]
    pairs = pairs.assign(real=held.loc[pairs["subject"], measure].to_numpy(float))
    pairs = pairs[np.isfinite(pairs[measure]) & np.isfinite(pairs["real"])]
    by_group = {g: pairs[pairs["group"] == g] for g in GROUPS}
    ratio = paired_bootstrap_ratio(
        {g: p[measure].to_numpy(float) for g, p in by_group.items()},
        {g: p["real"].to_numpy(float) for g, p in by_group.items()},
        n_boot=N_BOOT,
        seed=seed,
    )
    means = {g: float(np.nanmean(v)) if np.isfinite(v).any() else NAN for g, v in values.items()}
    return (
        _row(measure, name, "all", means["AD"], means["CN"], interval=WELCH_IMAGES)
        | {k: diff[k] for k in ("difference", "low", "high")}
        | _fraction(ratio, PAIRED_BOOTSTRAP, established(target))
    )


def morphometry_differences(
    by_seed: pd.DataFrame,
    reals: pd.DataFrame,
    sets: list[str],
    *,
    ceilings: pd.DataFrame | None = None,
    held_out_outliers=(),
    seed: int = 0,
) -> pd.DataFrame:
    """Per measure: the held-out and train reals' AD - CN difference (Welch interval); per
    generated set in ``sets`` each seed's AD - CN difference of set means and their mean across
    seeds (t interval); per ceiling set (``ceilings``: its kept images with subject, condition,
    group and the measures) the difference across its images. A set's share of the held-out
    difference is given only where that difference is established (its interval excludes 0),
    with an interval that counts the denominator's uncertainty. ``held_out_outliers``: the
    subjects the outlier rule flags, left out of the held-out difference as out of every set."""
    require_columns(by_seed, ["seed", "condition", "group", *MEASURES], "morphometry by seed")
    require_columns(reals, ["subject", "group", "split", *MEASURES], "real morphometry")
    require_groups(reals["group"], "real morphometry")
    wanted = by_seed[by_seed["condition"].isin(sets)]
    require_groups(wanted["group"], "morphometry by seed")
    ceilings = ceilings if ceilings is not None else pd.DataFrame(columns=["condition"])
    outliers = {str(s) for s in held_out_outliers}
    rows = []
    for measure in MEASURES:
        real_rows, target = _real_rows(measure, reals, outliers)
        rows += real_rows
        for name in sets:
            rows += _seed_rows(measure, name, wanted[wanted["condition"] == name], target)
        for name, images in ceilings.groupby("condition", sort=False):
            rows.append(_ceiling_row(measure, str(name), images, reals, target, seed))
    return pd.DataFrame(rows)


def per_image_measures(references: pd.DataFrame, scores: list[pd.DataFrame]) -> pd.DataFrame:
    """Every image's measures, outliers left out as in Table 1: the held-out reals and the
    ceiling sets from ``references`` (their flagged seed-free scores), the generated sets from
    every seed's table. Column ``source``: the condition, the held-out reals as HELD_OUT; rows:
    HELD_OUT first, then the sources in order of appearance (generated, then ceiling)."""
    generated = [table[is_generated(table["condition"])] for table in scores]
    per_image = pd.concat([*generated, references], ignore_index=True)
    per_image = per_image[~as_bool(per_image["outlier"], "outlier")]
    per_image["source"] = per_image["condition"].replace({REAL_CONDITION: HELD_OUT})
    order = [HELD_OUT, *[c for c in dict.fromkeys(per_image["source"]) if c != HELD_OUT]]
    return per_image.set_index("source").loc[order].reset_index()
