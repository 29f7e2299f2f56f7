"""brainmr.evaluate: KDE log-likelihoods, the AD/CN CNN, per-image scores, outliers, set metrics
and the summary across replicate seeds. Everything here computes; brainmr.report formats.

Names are imported lazily, so that the workflow can read the stage configs at parse time without
importing torch."""

from importlib import import_module

_HOMES = {
    "ClassifierConfig": "config",
    "JudgeConfig": "config",
    "KdeConfig": "config",
    "extract_features": "classifier",
    "load_classifier": "classifier",
    "train_classifier": "classifier",
    "fit_kde": "kde",
    "load_kde": "kde",
    "score_images": "scoring",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
