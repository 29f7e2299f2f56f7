"""The sentences below Table 1: what the numbers found, worded from evaluate's findings.json
(nothing is computed here but the wording)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from brainmr.report.format import fmt, interval
from brainmr.report.labels import row_label, set_label

JUDGE_NAMES = {"cnn": "the CNN", "likelihood": "the likelihood verdict", "morphometry": "anatomy"}


def _pct(value) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{100 * value:.0f}%"


def _signed(value, scale: float = 1.0, unit: str = "") -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return f"{scale * value:+.0f}{unit}"


def ceiling_sentences(ceiling: list[dict], conditions: Mapping) -> list[str]:
    lines = []
    for r in ceiling:
        label = set_label(r["ceiling"], r["group"], conditions)
        guard = "yes" if r["in_distribution"] else "no: its CNN figures are not interpretable"
        lines.append(
            f"- {label} (in the CNN's distribution in every seed: {guard}): through the "
            f"generator's bottleneck alone, the share called AD moved from "
            f"{_pct(r['cnn_AD_real'])} to {_pct(r['cnn_AD_ceiling'])} by the CNN "
            f"({_signed(r['cnn_AD_shift'], 100, ' points')}) and from "
            f"{_pct(r['likelihood_AD_real'])} to {_pct(r['likelihood_AD_ceiling'])} by likelihood "
            f"({_signed(r['likelihood_AD_shift'], 100, ' points')}); the ventricle area moved "
            f"from {fmt(r['anatomy_real'], 0)} to {fmt(r['anatomy_ceiling'], 0)} mm² "
            f"({_signed(r['anatomy_shift'])}). That much of what the judges say of generated "
            "images is the bottleneck's, not the model's."
        )
    return lines


def anatomy_sentences(anatomy: list[dict], conditions: Mapping) -> list[str]:
    lines = []
    for r in anatomy:
        source = r["source"]
        if source in ("held-out reals", "train reals"):
            if source == "held-out reals":
                lines.append(
                    f"- Real anatomy: held-out AD slices have {fmt(r['difference'], 0)} mm² more "
                    f"central CSF (ventricles) than CN {interval(r['low'], r['high'], 0)}."
                )
            continue
        name = (
            set_label(source, "AD", conditions).replace("held-out real AD", "held-out reals")
            if source not in conditions
            else row_label("AD/CN", source, conditions)
        )
        lines.append(
            f"- {name}: AD − CN ventricle area {fmt(r['difference'], 0)} mm² "
            f"{interval(r['low'], r['high'], 0)}, {_pct(r['fraction_reproduced'])} of the real "
            f"difference reproduced {interval(r['fraction_low'], r['fraction_high'], 2)} "
            "(t 95% across seeds)."
        )
    return lines


def separation_sentences(separation: list[dict], conditions: Mapping) -> list[str]:
    lines = []
    for r in separation:
        found = [j for j in JUDGE_NAMES if r[j]["separates"]]
        missed = [j for j in JUDGE_NAMES if not r[j]["separates"]]
        label = row_label("AD/CN", r["condition"], conditions)
        detail = "; ".join(
            f"{JUDGE_NAMES[j]} {fmt(r[j]['difference'], 2)} "
            f"{interval(r[j]['low'], r[j]['high'], 2)}"
            + ("" if r[j].get("interpretable", True) else " †")
            for j in JUDGE_NAMES
        )
        if not missed:
            verdict = "all three judges tell its AD images from its CN images"
        elif not found:
            verdict = "no judge tells its AD images from its CN images"
        else:
            verdict = (
                f"{' and '.join(JUDGE_NAMES[j] for j in found)} "
                f"{'tells' if len(found) == 1 else 'tell'} its AD images from its CN images, "
                f"{' and '.join(JUDGE_NAMES[j] for j in missed)} "
                f"{'does' if len(missed) == 1 else 'do'} not: the judges disagree"
            )
        lines.append(
            f"- {label}: {verdict} (AD − CN, seed mean [t 95%]: share called AD, and ventricle "
            f"area in mm²: {detail})."
        )
    return lines


def findings_lines(findings: dict, conditions: Mapping) -> list[str]:
    return [
        "## What this table found",
        "",
        *ceiling_sentences(findings["ceiling"], conditions),
        *anatomy_sentences(findings["anatomy"], conditions),
        *separation_sentences(findings["separation"], conditions),
    ]
