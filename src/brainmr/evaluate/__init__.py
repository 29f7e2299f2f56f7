"""brainmr.evaluate: KDE log-likelihoods, the AD/CN CNN, per-image scores and extra metrics."""

from brainmr.evaluate.classifier import extract_features, load_classifier, train_classifier
from brainmr.evaluate.config import EvaluateConfig
from brainmr.evaluate.kde import fit_kde, load_kde
from brainmr.evaluate.scoring import score_images

__all__ = [
    "EvaluateConfig",
    "extract_features",
    "fit_kde",
    "load_classifier",
    "load_kde",
    "score_images",
    "train_classifier",
]
