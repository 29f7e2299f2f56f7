"""brainmr.report.figures on the toy run (the toy_run fixture, tests/toy_run.py)."""

from __future__ import annotations

from toy_run import CONDITIONS

from brainmr.report import make_figures


def test_make_figures_writes_four_pngs(toy_run):
    out = {
        n: toy_run["root"] / "figures" / f"{n}.png" for n in ("figure1", "forest", "hist", "memo")
    }
    make_figures(
        scores=toy_run["scores"][0],
        set_metrics=toy_run["set_metrics"][0],
        summary=toy_run["ev"] / "summary.tsv",
        conditions=CONDITIONS,
        run_label="toy run",
        synthetic=True,
        out_figure1=out["figure1"],
        out_forest=out["forest"],
        out_histograms=out["hist"],
        out_memorization=out["memo"],
    )
    for path in out.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
