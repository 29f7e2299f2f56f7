"""Write Table 1 (seed 0), its summary across replicate seeds, its comparison with the paper and
the extra metrics into results/, from what brainmr.evaluate computed: table1.py, summary.py and
paper.py format them; nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from brainmr import io
from brainmr.evaluate.judges.outliers import REAL_CONDITION
from brainmr.report.findings import findings_lines
from brainmr.report.format import DASH, header, markdown_table
from brainmr.report.html import markdown_html
from brainmr.report.labels import set_label
from brainmr.report.paper import vs_paper_markdown
from brainmr.report.summary import summary_frame, summary_markdown
from brainmr.report.table1 import (
    cn_minus_ad,
    marked,
    table1_frame,
    table1_notes,
    with_prob_intervals,
)
from brainmr.seeds import headline_seed


def write_tables(
    *,
    inputs: Mapping[str, object],
    outputs: Mapping[str, object],
    conditions: Mapping,
    run_label: str,
    synthetic: bool,
    provenance: Mapping[str, object],
    mad_k: float,
) -> None:
    """Format the evaluation into results/. ``inputs``: by_seed, summary, comparisons, verdict,
    set_metrics (one per seed, first seed first), sensitivity, kde, findings. ``outputs``: csv, md,
    vs_paper, summary_csv, summary_md, metrics, and optionally html and summary_html (the two
    Markdown tables as HTML pages for the report)."""
    by_seed = io.read_tsv(inputs["by_seed"])
    summary = io.read_tsv(inputs["summary"])
    comparisons = io.read_tsv(inputs["comparisons"])
    verdict = io.read_json(inputs["verdict"])
    kde = io.read_json(inputs["kde"])
    sensitivity = pd.read_csv(inputs["sensitivity"])
    seeds = verdict["seeds"]
    metrics = [
        io.read_tsv(p).assign(seed=s) for s, p in zip(seeds, inputs["set_metrics"], strict=True)
    ]
    seed = headline_seed(seeds)  # Table 1's seed; the summary has every seed
    at = seeds.index(seed)
    cnn = verdict["cnn"]["per_seed"][at] | {"seed": seed}
    cnn |= {"split_balance": verdict["cnn"]["split_balance"]}
    cnn |= _test_counts(by_seed, seed)

    table = with_prob_intervals(table1_frame(by_seed, seed, conditions), metrics[at], conditions)
    with io.atomic_path(outputs["csv"]) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f", na_rep=DASH)
    md = header(
        "Table 1: KDE log-likelihood and CNN predictions of generated images", run_label, synthetic
    )
    md += [markdown_table(marked(table)), ""]
    md += findings_lines(io.read_json(inputs["findings"]), conditions) + [""]
    md += table1_notes(
        kde=kde,
        cnn=cnn,
        verdict=verdict,
        metrics=metrics[at],
        seed=seed,
        mad_k=float(mad_k),
        sensitivity=sensitivity,
        conditions=conditions,
    )
    io.write_text(outputs["md"], "\n".join(md) + "\n")
    if "html" in outputs:
        io.write_text(outputs["html"], markdown_html("\n".join(md), "Table 1"))
    differences = cn_minus_ad(by_seed, seed, conditions)
    io.write_text(
        outputs["vs_paper"],
        vs_paper_markdown(table, differences, run_label, synthetic, kde, cnn, provenance),
    )
    with io.atomic_path(outputs["summary_csv"]) as tmp:
        summary_frame(summary, conditions).to_csv(tmp, index=False, float_format="%.6g")
    summary_md = summary_markdown(
        summary=summary,
        comparisons=comparisons,
        verdict=verdict,
        sensitivity=sensitivity,
        conditions=conditions,
        run_label=run_label,
        synthetic=synthetic,
    )
    io.write_text(outputs["summary_md"], summary_md)
    if "summary_html" in outputs:
        io.write_text(outputs["summary_html"], markdown_html(summary_md, "Table 1 across seeds"))
    all_metrics = pd.concat(metrics, ignore_index=True)
    all_metrics.insert(
        0,
        "set",
        [
            set_label(c, g, conditions)
            for c, g in zip(all_metrics.condition, all_metrics.group, strict=True)
        ],
    )
    with io.atomic_path(outputs["metrics"]) as tmp:
        all_metrics.to_csv(tmp, index=False, float_format="%.6g")


def _test_counts(by_seed: pd.DataFrame, seed: int) -> dict:
    real = by_seed[(by_seed["seed"] == seed) & (by_seed["condition"] == REAL_CONDITION)]
    return {f"n_test_{r.group}": int(r.n_total) for r in real.itertuples()}
