"""Kernel density log-likelihood of images under the AD and CN training slices (paper 2.3, 1).

Space: images normalised (brainmr.evaluate.images), flattened at 160 x 160, projected with one PCA
fitted on the training slices of both classes (so both KDEs live in the same space and their
log-likelihoods are comparable), whiten=False. One Gaussian KDE per class on its training slices.

The KDE's coordinates are the PCA scores plus one more: the image's distance to the PCA subspace
(the norm of its reconstruction residual, in the same pixel units). Without it, anything
orthogonal to the training slices' main modes (pure noise, a blank image, junk in the background)
projects near the training data and looks likely; measured on toy slices, noise then scores as
high as real held-out slices. The extra coordinate is shared by both classes, so it barely moves
the AD-vs-CN comparison, and it is what lets the outlier rule see clear failures.

Bandwidth (the "misclassified (likelihood)" verdict compares log-likelihoods across the two
KDEs, so it must not hinge on how each KDE was tuned):

- cfg.bandwidth set: that bandwidth (KDE-space units) for both classes.
- bandwidth_rule "shared" (default): one bandwidth for both classes, maximising the exact
  leave-one-out log-likelihood of the pooled training coordinates. Two bandwidths carry two
  different log-normalisers (d log h): with identical AD and CN data in 21 dimensions, one old
  grid step apart (0.5 vs 0.7 x scale) tilts 60-94% of points towards one class (tests/unit/
  test_kde.py); with one shared bandwidth the fraction stays near one half.
- bandwidth_rule "per_class": each class its own leave-one-out optimum (the older behaviour).

The search is continuous (bounded Brent on log h, after a coarse log grid that brackets the
optimum) within cfg.bandwidth_bounds x the data scale; an optimum at a bound is logged as a
warning and recorded as ``at_bound``.

Balance: a KDE on fewer points has a lower expected log-density at a typical point (Jensen: the
log of a noisier mean), so unequal class sizes tilt the verdict towards the larger class. With
kde_balance "subsample" the larger class is scored as the mean log-likelihood over
kde_balance_repeats KDEs, each on a random subsample (without replacement) of the smaller class's
size; the smaller class uses all its points.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp
from sklearn.decomposition import PCA
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.neighbors import KernelDensity

from brainmr import GROUPS, io
from brainmr.evaluate.config import KdeConfig
from brainmr.evaluate.images import (
    FOREGROUND_LEVEL,
    IMAGE_SIZE,
    MIN_FOREGROUND_FRACTION,
    NORMALISE_PERCENTILE,
    flatten,
    load_normalised,
    require_columns,
    require_groups,
)
from brainmr.evaluate.metrics import pairwise_sq_distances
from brainmr.evaluate.stats import robust_low_threshold

log = logging.getLogger(__name__)
BANDWIDTH_RULES = ("shared", "per_class")
BALANCES = ("none", "subsample")
# An optimum within this fraction of the log-bandwidth interval of a bound counts as at the bound.
AT_BOUND_TOLERANCE = 0.01
# Coarse log grid that brackets the optimum before the bounded search refines it (guards Brent
# against a local optimum, e.g. the spike near h -> 0 that duplicated slices create).
BRACKET_POINTS = 17


@dataclass
class ClassDensity:
    """One class's Gaussian KDE: the mean log-density over one or more member KDEs (several when
    the class is subsampled for balance), all with the same bandwidth."""

    bandwidth: float
    members: list[KernelDensity]

    def score_samples(self, z: np.ndarray) -> np.ndarray:
        if len(z) == 0:
            return np.zeros(0)
        return np.mean([kde.score_samples(z) for kde in self.members], axis=0)


@dataclass
class KdeModel:
    """PCA projection plus one fitted ClassDensity per class."""

    pca: PCA
    densities: dict[str, ClassDensity]
    bandwidths: dict[str, float]
    n_per_class: dict[str, int]
    selection: dict[str, dict] = field(default_factory=dict)
    bandwidth_rule: str = "shared"
    balance: str = "none"

    def project(self, pixels: np.ndarray) -> np.ndarray:
        """KDE coordinates: PCA scores, then the residual norm (see the module docstring)."""
        return kde_coordinates(self.pca, pixels)

    def score(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """Log-likelihood of each row of ``pixels`` (n, 160*160) under each class's KDE."""
        return score_coordinates(self.densities, self.project(pixels))


# ---------------------------------------------------------------- PCA space


def fit_pca(pixels: np.ndarray, n_components: int, seed: int) -> PCA:
    return PCA(n_components=n_components, whiten=False, random_state=seed).fit(pixels)


def capped_components(requested: int, pixels: np.ndarray) -> int:
    """PCA components actually fitted: at most n_samples - 1 and n_features."""
    return max(1, min(requested, len(pixels) - 1, pixels.shape[1]))


def kde_coordinates(pca: PCA, pixels: np.ndarray) -> np.ndarray:
    scores = pca.transform(pixels)
    residual = pixels - pca.inverse_transform(scores)
    return np.column_stack([scores, np.linalg.norm(residual, axis=1)])


# ---------------------------------------------------------------- bandwidth


def loo_objective(data: np.ndarray) -> Callable[[float], float]:
    """Mean leave-one-out log-likelihood of ``data`` under its own Gaussian KDE, as a function
    of log h (the distances are computed once, so each evaluation is one logsumexp)."""
    n, d = data.shape
    if n < 2:
        raise ValueError("leave-one-out needs at least 2 points")
    centred = data - data.mean(axis=0)  # translation-invariant; limits cancellation in d2
    d2 = pairwise_sq_distances(centred, centred)
    np.fill_diagonal(d2, np.inf)

    def mean_loo(log_h: float) -> float:
        h2 = np.exp(2.0 * log_h)
        norm = 0.5 * d * np.log(2.0 * np.pi * h2) + np.log(n - 1)
        return float(np.mean(logsumexp(-d2 / (2.0 * h2), axis=1)) - norm)

    return mean_loo


def leave_one_out_loglik(data: np.ndarray, bandwidth: float) -> float:
    """Mean leave-one-out log-likelihood of ``data`` under its own Gaussian KDE."""
    return loo_objective(data)(float(np.log(bandwidth)))


def data_scale(z: np.ndarray) -> float:
    """Root mean per-component variance: the unit the bandwidth bounds are expressed in."""
    return float(np.sqrt(np.mean(z.var(axis=0))))


def search_bandwidth(
    z: np.ndarray, bounds: list[float] | tuple[float, float]
) -> tuple[float, dict]:
    """Bandwidth maximising the leave-one-out log-likelihood of ``z`` over log h within
    ``bounds`` x the data scale: a coarse log grid brackets the optimum, bounded Brent refines."""
    lo_mult, hi_mult = (float(b) for b in bounds)
    if not 0 < lo_mult < hi_mult:
        raise ValueError(f"bandwidth_bounds must be 0 < low < high, got {list(bounds)}")
    scale = data_scale(z)
    if scale <= 0:
        raise ValueError("all training slices are identical in KDE space: no bandwidth to fit")
    objective = loo_objective(z)
    lo, hi = np.log(lo_mult * scale), np.log(hi_mult * scale)
    grid = np.linspace(lo, hi, BRACKET_POINTS)
    best = int(np.argmax([objective(t) for t in grid]))
    bracket = (grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)])
    result = minimize_scalar(
        lambda t: -objective(t), bounds=bracket, method="bounded", options={"xatol": 1e-4}
    )
    log_h = float(result.x)
    width = hi - lo
    side = "lower" if log_h - lo <= AT_BOUND_TOLERANCE * width else None
    side = "upper" if hi - log_h <= AT_BOUND_TOLERANCE * width else side
    h = float(np.exp(log_h))
    if side is not None:
        log.warning(
            "KDE bandwidth %.4g (%.4g x scale) is at the %s search bound: widen bandwidth_bounds",
            h,
            h / scale,
            side,
        )
    info = {
        "method": "leave-one-out log-likelihood, bounded search on log h",
        "n": int(len(z)),
        "scale": scale,
        "bounds": [float(lo_mult * scale), float(hi_mult * scale)],
        "bandwidth": h,
        "bandwidth_over_scale": h / scale,
        "loo_loglik": -float(result.fun),
        "at_bound": side is not None,
        "bound_side": side,
    }
    return h, info


def check_cfg(cfg: KdeConfig) -> None:
    if cfg.bandwidth_rule not in BANDWIDTH_RULES:
        raise ValueError(f"bandwidth_rule {cfg.bandwidth_rule!r} not in {BANDWIDTH_RULES}")
    if cfg.kde_balance not in BALANCES:
        raise ValueError(f"kde_balance {cfg.kde_balance!r} not in {BALANCES}")
    if cfg.bandwidth is not None and not cfg.bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {cfg.bandwidth}")
    if cfg.kde_balance_repeats < 1:
        raise ValueError(f"kde_balance_repeats must be >= 1, got {cfg.kde_balance_repeats}")


def effective_rule(cfg: KdeConfig) -> str:
    """The bandwidth rule in force: "fixed" when cfg.bandwidth overrides the search."""
    return "fixed" if cfg.bandwidth is not None else cfg.bandwidth_rule


def choose_bandwidths(
    z: np.ndarray, groups: np.ndarray, cfg: KdeConfig
) -> tuple[dict[str, float], dict[str, dict]]:
    """Each class's bandwidth and how it was chosen (``selection[group]``; the shared rule's
    single search is recorded under both classes)."""
    check_cfg(cfg)
    groups = np.asarray(groups)
    if cfg.bandwidth is not None:
        h = float(cfg.bandwidth)
        info = {"method": "fixed (cfg.bandwidth, KDE-space units)", "at_bound": False}
        return {g: h for g in GROUPS}, {g: dict(info) for g in GROUPS}
    if cfg.bandwidth_rule == "shared":
        pooled = np.isin(groups, GROUPS)
        h, info = search_bandwidth(z[pooled], cfg.bandwidth_bounds)
        return {g: h for g in GROUPS}, {g: info | {"pooled": True} for g in GROUPS}
    bandwidths, selection = {}, {}
    for g in GROUPS:
        bandwidths[g], info = search_bandwidth(z[groups == g], cfg.bandwidth_bounds)
        selection[g] = info | {"pooled": False}
    return bandwidths, selection


# ---------------------------------------------------------------- densities


def balance_subsets(
    counts: dict[str, int], balance: str, repeats: int, seed: int
) -> dict[str, list[np.ndarray]]:
    """Row indices (into each class's own points) of each class's member KDEs.

    "subsample": the larger class gets ``repeats`` draws of the smaller class's size, without
    replacement, from ``np.random.default_rng(seed)`` in order (``rng.choice(n_large, n_small,
    replace=False)`` per repeat); the smaller class, and both classes when equal in size or
    balance is "none", get all their points."""
    subsets = {g: [np.arange(n)] for g, n in counts.items()}
    if balance == "none" or counts["AD"] == counts["CN"]:
        return subsets
    small, large = sorted(GROUPS, key=lambda g: counts[g])
    rng = np.random.default_rng(seed)
    subsets[large] = [
        rng.choice(counts[large], counts[small], replace=False) for _ in range(repeats)
    ]
    return subsets


def fit_densities(
    z: np.ndarray,
    groups: np.ndarray,
    bandwidths: dict[str, float],
    *,
    balance: str = "none",
    repeats: int = 1,
    seed: int = 0,
) -> dict[str, ClassDensity]:
    """One ClassDensity per class on its rows of ``z`` with the given bandwidths."""
    groups = np.asarray(groups)
    points = {g: z[groups == g] for g in GROUPS}
    subsets = balance_subsets({g: len(p) for g, p in points.items()}, balance, repeats, seed)
    return {
        g: ClassDensity(
            bandwidths[g],
            [
                KernelDensity(kernel="gaussian", bandwidth=bandwidths[g]).fit(points[g][rows])
                for rows in subsets[g]
            ],
        )
        for g in GROUPS
    }


def fit_class_densities(
    z: np.ndarray, groups: np.ndarray, cfg: KdeConfig
) -> tuple[dict[str, ClassDensity], dict[str, float], dict[str, dict]]:
    """The estimator on KDE coordinates ``z`` (n, d): bandwidths by cfg's rule, then each class's
    density (balanced as cfg says). Returns (densities, bandwidths, selection)."""
    groups = np.asarray(groups)
    require_two_per_class(groups)
    bandwidths, selection = choose_bandwidths(z, groups, cfg)
    densities = fit_densities(
        z,
        groups,
        bandwidths,
        balance=cfg.kde_balance,
        repeats=cfg.kde_balance_repeats,
        seed=cfg.seed,
    )
    for g in GROUPS:
        log.info(
            "KDE %s: n=%d bandwidth=%.4g (rule %s, balance %s, %d member KDE(s))",
            g,
            int(np.sum(groups == g)),
            bandwidths[g],
            effective_rule(cfg),
            cfg.kde_balance,
            len(densities[g].members),
        )
    return densities, bandwidths, selection


def score_coordinates(densities: dict[str, ClassDensity], z: np.ndarray) -> dict[str, np.ndarray]:
    return {g: density.score_samples(z) for g, density in densities.items()}


def require_two_per_class(groups: np.ndarray) -> dict[str, int]:
    counts = {g: int(np.sum(groups == g)) for g in GROUPS}
    for g, n in counts.items():
        if n < 2:
            raise ValueError(f"KDE needs at least 2 training slices of {g}, got {n}")
    return counts


def fit_kde_model(pixels: np.ndarray, groups: np.ndarray, cfg: KdeConfig) -> KdeModel:
    """Fit the shared PCA and one KDE per class. ``pixels``: (n, D) normalised, flattened."""
    groups = np.asarray(groups)
    counts = require_two_per_class(groups)
    n_components = capped_components(cfg.pca_components, pixels)
    if n_components < cfg.pca_components:
        log.warning("PCA components capped at %d (n_samples - 1)", n_components)
    pca = fit_pca(pixels, n_components, cfg.seed)
    densities, bandwidths, selection = fit_class_densities(
        kde_coordinates(pca, pixels), groups, cfg
    )
    return KdeModel(
        pca, densities, bandwidths, counts, selection, effective_rule(cfg), cfg.kde_balance
    )


# ---------------------------------------------------------------- verdict


def likelihood_verdict(loglik_ad: np.ndarray, loglik_cn: np.ndarray) -> np.ndarray:
    """ "AD" where the log-likelihood under the AD KDE is higher, else "CN"."""
    return np.where(np.asarray(loglik_ad) > np.asarray(loglik_cn), "AD", "CN")


def verdict_metrics(groups: np.ndarray, loglik_ad: np.ndarray, loglik_cn: np.ndarray) -> dict:
    """The likelihood verdict as a classifier of images of known ``groups`` (held-out reals)."""
    groups = np.asarray(groups).astype(str)
    loglik_ad, loglik_cn = np.asarray(loglik_ad, float), np.asarray(loglik_cn, float)
    verdict = likelihood_verdict(loglik_ad, loglik_cn)
    labels = (groups == "AD").astype(int)
    both = 0 < labels.sum() < len(labels)
    return {
        "accuracy": float(np.mean(verdict == groups)) if len(groups) else None,
        "balanced_accuracy": float(balanced_accuracy_score(groups, verdict)) if both else None,
        "auc": float(roc_auc_score(labels, loglik_ad - loglik_cn)) if both else None,
        "n_AD": int(labels.sum()),
        "n_CN": int(len(labels) - labels.sum()),
    }


def misclassified_mask(groups: np.ndarray, loglik: dict[str, np.ndarray]) -> np.ndarray:
    """Images whose likelihood verdict is not their class (the rule, ties included, of Table
    1's 'misclassified (likelihood)' column)."""
    return likelihood_verdict(loglik["AD"], loglik["CN"]) != np.asarray(groups).astype(str)


# ---------------------------------------------------------------- sensitivity

SENSITIVITY_COLUMNS = [
    "pca_components",
    "bandwidth_rule",
    "balance",
    "is_default",
    "condition",
    "group",
    "seed",
    "n",
    "misclassified",
    "misclassified_fraction",
    "heldout_accuracy",
    "heldout_auc",
]


def sensitivity_components(cfg: KdeConfig, n_train: int, n_features: int) -> list[int]:
    """PCA sizes of the sensitivity table, capped like the fit itself, de-duplicated, sorted."""
    requested = cfg.sensitivity_pca_components or [
        max(1, cfg.pca_components // 2),
        cfg.pca_components,
        2 * cfg.pca_components,
    ]
    return sorted({max(1, min(int(k), n_train - 1, n_features)) for k in requested})


def kde_sensitivity(
    train_pixels: np.ndarray,
    train_groups: np.ndarray,
    test_pixels: np.ndarray,
    test_groups: np.ndarray,
    generated: pd.DataFrame,
    generated_pixels: np.ndarray,
    cfg: KdeConfig,
    mad_k: float,
) -> pd.DataFrame:
    """The misclassified counts of every generated set (``generated``: condition, group, seed,
    one row per row of ``generated_pixels``) and the verdict on held-out reals, refitting the KDE
    for each PCA size x bandwidth rule x balance. One row per (variant, set); is_default marks
    cfg's own variant (rule "fixed" when cfg.bandwidth is set). Counts leave out the images that
    are outliers under the variant's own KDE (Table 1's rule, ``mad_k``, with the threshold from
    the held-out reals under that KDE), so the default variant's rows are Table 1's counts."""
    check_cfg(cfg)
    require_columns(generated, ["condition", "group", "seed"], "generated table")
    if len(generated) != len(generated_pixels):
        raise ValueError(f"{len(generated)} generated rows but {len(generated_pixels)} images")
    train_groups = np.asarray(train_groups).astype(str)
    test_groups = np.asarray(test_groups).astype(str)
    require_two_per_class(train_groups)
    gen_groups = generated["group"].astype(str).to_numpy()
    sets = generated[["condition", "group", "seed"]].reset_index(drop=True)
    default_components = capped_components(cfg.pca_components, train_pixels)
    components = sorted(
        set(sensitivity_components(cfg, len(train_pixels), train_pixels.shape[1]))
        | {default_components}
    )
    rules = [*BANDWIDTH_RULES, *(["fixed"] if cfg.bandwidth is not None else [])]
    default = (default_components, effective_rule(cfg), cfg.kde_balance)
    rows = []
    for k in components:
        # The PCA and the coordinates depend on k alone: fitted once for all rules and balances.
        pca = fit_pca(train_pixels, k, cfg.seed)
        z_train, z_test, z_gen = (
            kde_coordinates(pca, p) for p in (train_pixels, test_pixels, generated_pixels)
        )
        for rule in rules:
            rule_cfg = variant_cfg(cfg, rule)
            bandwidths, _ = choose_bandwidths(z_train, train_groups, rule_cfg)
            for balance in BALANCES:
                densities = fit_densities(
                    z_train,
                    train_groups,
                    bandwidths,
                    balance=balance,
                    repeats=cfg.kde_balance_repeats,
                    seed=cfg.seed,
                )
                held_loglik = score_coordinates(densities, z_test)
                held = verdict_metrics(test_groups, held_loglik["AD"], held_loglik["CN"])
                gen_loglik = score_coordinates(densities, z_gen)
                wrong = misclassified_mask(gen_groups, gen_loglik)
                cut = robust_low_threshold(np.maximum(*held_loglik.values()), mad_k)
                kept = np.maximum(gen_loglik["AD"], gen_loglik["CN"]) >= cut
                variant = {
                    "pca_components": k,
                    "bandwidth_rule": rule,
                    "balance": balance,
                    "is_default": (k, rule, balance) == default,
                }
                counted = (
                    sets.assign(wrong=wrong & kept, kept=kept)
                    .groupby(["condition", "group", "seed"], sort=False)
                    .agg(n=("kept", "sum"), misclassified=("wrong", "sum"))
                    .reset_index()
                )
                for row in counted.itertuples(index=False):
                    rows.append(
                        variant
                        | {"condition": row.condition, "group": row.group, "seed": row.seed}
                        | {"n": int(row.n), "misclassified": int(row.misclassified)}
                        | {"misclassified_fraction": int(row.misclassified) / max(int(row.n), 1)}
                        | {"heldout_accuracy": held["accuracy"], "heldout_auc": held["auc"]}
                    )
                log.info(
                    "KDE variant k=%d rule=%s balance=%s: held-out accuracy %s",
                    k,
                    rule,
                    balance,
                    held["accuracy"],
                )
    return pd.DataFrame(rows, columns=SENSITIVITY_COLUMNS)


def variant_cfg(cfg: KdeConfig, rule: str) -> KdeConfig:
    """cfg with one bandwidth rule in force ("fixed" keeps cfg.bandwidth, others drop it)."""
    if rule == "fixed":
        return cfg
    return dataclasses.replace(cfg, bandwidth=None, bandwidth_rule=rule)


def kde_sensitivity_file(
    *,
    train: pd.DataFrame,
    test: pd.DataFrame,
    generated: pd.DataFrame,
    out_csv: Path,
    cfg: KdeConfig,
    mad_k: float,
) -> None:
    """kde_sensitivity on image tables (``path``, ``group``; generated also condition, seed)."""
    require_columns(train, ["path", "group"], "KDE training table")
    require_columns(test, ["path", "group"], "held-out table")
    require_columns(generated, ["path", "condition", "group", "seed"], "generated table")
    for table, what in ((train, "training"), (test, "held-out"), (generated, "generated")):
        require_groups(table["group"], f"{what} table")
    table = kde_sensitivity(
        flatten(load_normalised(train["path"])),
        train["group"].to_numpy(),
        flatten(load_normalised(test["path"])),
        test["group"].to_numpy(),
        generated.reset_index(drop=True),
        flatten(load_normalised(generated["path"])),
        cfg,
        mad_k,
    )
    with io.atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    log.info("KDE sensitivity: %d rows -> %s", len(table), out_csv)


# ---------------------------------------------------------------- files


def kde_summary(model: KdeModel, cfg: KdeConfig) -> dict:
    """What the JSON beside the model records (and Table 1's notes repeat)."""
    ratio = model.pca.explained_variance_ratio_
    return {
        "space": (
            f"PCA scores of flattened {IMAGE_SIZE}x{IMAGE_SIZE} images (whiten=False, fitted on "
            "the training slices of both classes) plus the PCA reconstruction residual norm"
        ),
        "dimensions": int(model.pca.n_components_) + 1,
        "normalisation": (
            f"image / percentile(pixels > {FOREGROUND_LEVEL}, {NORMALISE_PERCENTILE}), clipped to "
            f"[0, 1]; unscaled if foreground < {MIN_FOREGROUND_FRACTION:.0%} of pixels"
        ),
        "components_requested": cfg.pca_components,
        "components": int(model.pca.n_components_),
        "explained_variance_ratio": [float(r) for r in ratio],
        "explained_variance_total": float(ratio.sum()),
        "kernel": "gaussian",
        "bandwidth_rule": model.bandwidth_rule,
        "balance": model.balance,
        "balance_repeats": cfg.kde_balance_repeats if model.balance == "subsample" else None,
        "bandwidths": model.bandwidths,
        "bandwidth_bounds": [float(b) for b in cfg.bandwidth_bounds],
        "at_bound": any(info.get("at_bound", False) for info in model.selection.values()),
        "bandwidth_selection": model.selection,
        "n_per_class": model.n_per_class,
        "seed": cfg.seed,
    }


def fit_kde(*, train: pd.DataFrame, out_model: Path, out_json: Path, cfg: KdeConfig) -> None:
    """Fit the KDEs on the training slices (columns path, group, subject); save joblib + JSON."""
    require_columns(train, ["path", "group", "subject"], "KDE training table")
    require_groups(train["group"], "KDE training table")
    pixels = flatten(load_normalised(train["path"]))
    model = fit_kde_model(pixels, train["group"].to_numpy(), cfg)
    with io.atomic_path(out_model) as tmp:
        joblib.dump(model, tmp)
    io.write_json(out_json, kde_summary(model, cfg))


def load_kde(path: Path) -> KdeModel:
    model = joblib.load(path)
    if not isinstance(model, KdeModel):
        raise ValueError(f"{path}: not a brainmr KDE model ({type(model).__name__})")
    return model
