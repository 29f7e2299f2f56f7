"""brainmr.evaluate.images: the intensity normalisation every evaluation shares."""

from __future__ import annotations

import numpy as np

from brainmr import SLICE_SIZE
from brainmr.evaluate.images import normalise_intensity
from brainmr.evaluate.toy import toy_slices


def test_intensity_normalisation_removes_global_brightness():
    image = toy_slices("CN", 1, seed=5)[0]
    np.testing.assert_allclose(
        normalise_intensity(0.6 * image), normalise_intensity(image), atol=1e-5
    )
    assert normalise_intensity(np.zeros((SLICE_SIZE, SLICE_SIZE), np.float32)).max() == 0
