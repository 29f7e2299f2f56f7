"""brainmr.evaluate.images: the intensity normalisation every evaluation shares."""

from __future__ import annotations

import numpy as np

from brainmr import SLICE_SIZE
from brainmr.evaluate.images import rescale_foreground
from brainmr.evaluate.toy import toy_slices


def test_intensity_normalisation_removes_global_brightness():
    image = toy_slices("CN", 1, seed=5)[0]
    np.testing.assert_allclose(
        rescale_foreground(0.6 * image), rescale_foreground(image), atol=1e-5
    )
    assert rescale_foreground(np.zeros((SLICE_SIZE, SLICE_SIZE), np.float32)).max() == 0
