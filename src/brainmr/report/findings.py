"""The sentences below Table 1: what the numbers found, worded from evaluate's findings.json
(nothing is computed here but the wording). A sentence claims no more than its interval: a shift
or a separation is named only where evaluate found its interval to exclude 0, a share of the
real anatomy only where the real difference is established, and each interval says what it is."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from brainmr.report.format import fmt, interval
from brainmr.report.labels import row_label, set_label

JUDGE_NAMES = {"cnn": "the CNN", "likelihood": "the likelihood verdict", "morphometry": "anatomy"}
JUDGE_UNITS = {"cnn": (100, " points"), "likelihood": (100, " points"), "morphometry": (1, " mm²")}


def _pct(value) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{100 * value:.0f}%"


def _signed(value, scale: float = 1.0, unit: str = "") -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return f"{scale * value:+.0f}{unit}"


def _scaled_interval(low, high, scale: float, unit: str) -> str:
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return "[—]"
    return f"[{scale * low:+.0f}, {scale * high:+.0f}]{unit}"


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def ceiling_sentences(ceiling: list[dict], conditions: Mapping) -> list[str]:
    lines = []
    for r in ceiling:
        label = set_label(r["ceiling"], r["group"], conditions)
        guard = "yes" if r["in_distribution"] else "no: its CNN figures are not interpretable (†)"
        moves = []
        for judge, (before, after) in {
            "cnn": (_pct(r["cnn_real"]), _pct(r["cnn_ceiling"])),
            "likelihood": (_pct(r["likelihood_real"]), _pct(r["likelihood_ceiling"])),
            "morphometry": (fmt(r["morphometry_real"], 0), fmt(r["morphometry_ceiling"], 0)),
        }.items():
            scale, unit = JUDGE_UNITS[judge]
            what = "the ventricle area" if judge == "morphometry" else "the share called AD by"
            who = "" if judge == "morphometry" else f" {JUDGE_NAMES[judge]}"
            moves.append(
                f"{what}{who} {before} → {after}{' mm²' if judge == 'morphometry' else ''} "
                f"({_signed(r[f'{judge}_shift'], scale, unit)} "
                f"{_scaled_interval(r[f'{judge}_shift_low'], r[f'{judge}_shift_high'], scale, '')})"
            )
        moved = r["moved"]
        verdict = (
            f"That much of what {_and([JUDGE_NAMES[j] for j in moved])} "
            f"{'says' if len(moved) == 1 else 'say'} of generated images is the bottleneck's, "
            "not the model's."
            if moved
            else "No judge moved beyond its interval: the bottleneck alone does not account for "
            "what the judges say of generated images."
        )
        lines.append(
            f"- {label} (in the CNN's distribution in every seed: {guard}): through the "
            f"generator's bottleneck alone, over the {r['n_pairs']} subjects kept in both, "
            f"{'; '.join(moves)} (bootstrap 95% over subjects). {verdict}"
        )
    return lines


def _real_anatomy(r: dict) -> str:
    diff, low, high = r["difference"], r["low"], r["high"]
    ci = f"{interval(low, high, 0)}, {r['interval']}"
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 <= high:
        return (
            f"- Real anatomy: held-out AD and CN slices differ by {fmt(diff, 0)} mm² of central "
            f"CSF (ventricles) {ci}: no established difference, so no share of it is reported."
        )
    more = "more" if low > 0 else "less"
    return (
        f"- Real anatomy: held-out AD slices have {fmt(abs(diff), 0)} mm² {more} central CSF "
        f"(ventricles) than CN {ci}."
    )


def anatomy_sentences(anatomy: list[dict], conditions: Mapping) -> list[str]:
    lines = []
    for r in anatomy:
        source = r["source"]
        if source in ("held-out reals", "train reals"):
            if source == "held-out reals":
                lines.append(_real_anatomy(r))
            continue
        name = (
            set_label(source, "AD", conditions).replace("held-out real AD", "held-out reals")
            if source not in conditions
            else row_label("AD/CN", source, conditions)
        )
        if r["fraction_status"]:
            share = r["fraction_status"]
        else:
            share = (
                f"{_pct(r['fraction_reproduced'])} of the real difference reproduced "
                f"[{_pct(r['fraction_low'])}, {_pct(r['fraction_high'])}] "
                f"({r['fraction_interval']})"
            )
        lines.append(
            f"- {name}: AD − CN ventricle area {fmt(r['difference'], 0)} mm² "
            f"{interval(r['low'], r['high'], 0)} ({r['interval']}); {share}."
        )
    return lines


def _detail(r: dict, judge: str) -> str:
    """A judge's AD - CN figure with its interval (or why it has none), † where withheld."""
    test = r[judge]
    text = f"{JUDGE_NAMES[judge]} {fmt(test['difference'], 2)} "
    text += test["note"] if test.get("note") else interval(test["low"], test["high"], 2)
    return text + ("" if test.get("interpretable", True) else " †")


def _verdict(found: list[str], missed: list[str]) -> str:
    tell = "its AD images from its CN images"
    if not missed:
        many = len(found) > 1
        return f"{'all of ' if many else ''}{_and(found)} tell{'' if many else 's'} {tell}"
    if not found:
        return f"no judge tells {tell}"
    return (
        f"{_and(found)} tell{'s' if len(found) == 1 else ''} {tell}, {_and(missed)} "
        f"do{'es' if len(missed) == 1 else ''} not: the judges disagree"
    )


def separation_sentences(separation: list[dict], conditions: Mapping) -> list[str]:
    """Per condition, which judges tell its AD images from its CN images (evaluate's
    ``separates``); a withheld CNN (†) is neither among them nor against them."""
    lines = []
    for r in separation:
        judged = [j for j in JUDGE_NAMES if r[j].get("interpretable", True)]
        withheld = [JUDGE_NAMES[j] for j in JUDGE_NAMES if j not in judged]
        found = [JUDGE_NAMES[j] for j in judged if r[j]["separates"]]
        missed = [JUDGE_NAMES[j] for j in judged if not r[j]["separates"]]
        verdict = _verdict(found, missed) if judged else "no judge is left"
        if withheld:
            verdict += f" ({_and(withheld)} withheld: †)"
        lines.append(
            f"- {row_label('AD/CN', r['condition'], conditions)}: {verdict} (AD − CN, seed mean "
            f"[t 95%]: share called AD, and ventricle area in mm²: "
            f"{'; '.join(_detail(r, j) for j in JUDGE_NAMES)})."
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
