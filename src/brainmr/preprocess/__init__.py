"""brainmr.preprocess: skull strip, rigid alignment to MNI152 and the centre coronal slice."""

from brainmr.preprocess.config import PreprocessConfig
from brainmr.preprocess.scan import preprocess_scan
from brainmr.preprocess.volume import InputImageError

__all__ = ["InputImageError", "PreprocessConfig", "preprocess_scan"]
