"""The sentences below Table 1: what the numbers found, worded from evaluate's findings.json
(nothing is computed here but the wording)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from brainmr.report.tables import fmt, interval, row_label, set_label

JUDGE_NAMES = {"cnn": "the CNN", "likelihood": "the likelihood verdict", "morphometry": "anatomy"}


def _pct(value) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{100 * value:.0f}%"


def ceiling_sentences(ceiling: list[dict], conditions: Mapping) -> list[str]:
    lines = []
    for r in ceiling:
        label = set_label(r["ceiling"], r["group"], conditions)
        guard = "in" if r["in_distribution"] else "OUT OF"
        lines.append(
            f"- Through the generator's bottleneck alone ({label}; {guard} distribution for the "
            f"CNN in every seed: {'yes' if r['in_distribution'] else 'no'}), the share called AD "
            f"moved from {_pct(r['cnn_AD_real'])} to {_pct(r['cnn_AD_ceiling'])} by the CNN "
            f"({r['cnn_AD_shift'] * 100:+.0f} points) and from {_pct(r['likelihood_AD_real'])} to "
            f"{_pct(r['likelihood_AD_ceiling'])} by likelihood "
            f"({r['likelihood_AD_shift'] * 100:+.0f} points); the ventricle area moved from "
            f"{fmt(r['anatomy_real'], 0)} to {fmt(r['anatomy_ceiling'], 0)} mm² "
            f"({r['anatomy_shift']:+.0f}). That much of 'looks CN' (or AD) is the bottleneck's, "
            "not the model's."
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
            f"{JUDGE_NAMES[j]} {r[j]['difference']:+.2f} "
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
                f"{' and '.join(JUDGE_NAMES[j] for j in found)} tell its AD images from its CN "
                f"images, {' and '.join(JUDGE_NAMES[j] for j in missed)} do not: the judges "
                "disagree"
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
