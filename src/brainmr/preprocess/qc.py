"""Quality-control figure of one preprocessed scan: three orthogonal views of the brain aligned to
the template, with the subject's brain mask (red) and the template's brain outline (cyan)."""

from __future__ import annotations

import numpy as np

from brainmr.preprocess.slicing import CENTRE_I, CENTRE_K, CORONAL_J
from brainmr.preprocess.template import load_template


def _views(volume: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Axial, coronal (the slice plane) and sagittal planes through the grid centre, shown in
    radiological view (the subject's right on the left; superior or anterior up)."""
    return [
        (f"axial z = {CENTRE_K - 72} mm", volume[::-1, :, CENTRE_K][:, ::-1].T),
        (f"coronal y = {CORONAL_J - 134} mm (slice)", volume[::-1, CORONAL_J, ::-1].T),
        (f"sagittal x = {CENTRE_I - 98} mm", volume[CENTRE_I, ::-1, ::-1].T),
    ]


def qc_figure(aligned: np.ndarray, mask: np.ndarray, subject: str, stats: str = ""):
    """A matplotlib figure (Agg) of the aligned brain (intensities in [0, 1]) and its mask."""
    from matplotlib.figure import Figure

    template_mask = load_template().mask.astype(np.float32)
    fig = Figure(figsize=(12, 4.6))
    axes = fig.subplots(1, 3)
    views = zip(
        _views(aligned), _views(mask.astype(np.float32)), _views(template_mask), strict=True
    )
    for n, (ax, ((title, image), (_, brain), (_, outline))) in enumerate(
        zip(axes, views, strict=True)
    ):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.contour(brain, levels=[0.5], colors="red", linewidths=0.8)
        ax.contour(outline, levels=[0.5], colors="cyan", linewidths=0.6, linestyles="dotted")
        ax.set_title(title, fontsize=9)
        ax.text(2, 12, "R" if n < 2 else "A", color="yellow", fontsize=10)
        ax.set_axis_off()
    fig.suptitle(f"{subject}: brain aligned to MNI152 (red: brain mask, cyan: template) {stats}")
    return fig
