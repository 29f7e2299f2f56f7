"""Benchmark of the evaluation stage on toy slices: KDE fit + score, CNN train + predict,
nearest-neighbour correlation, at the demo's size and at the paper's (560 train slices, 400
generated images). Each size runs in its own process so its peak memory (max RSS) is its own.

    python bench/evaluate.py [--epochs 3] [--threads 2] [--json results/bench/evaluate.json]

CNN training runs a fixed number of epochs (no early stopping); the time for the configured
epochs is extrapolated from the measured seconds per epoch.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZES = {
    # config/config.yaml: 12 AD + 16 CN subjects, test_fraction 0.3; 2 conditions x 2 x 100 images
    "demo": {"train_AD": 8, "train_CN": 11, "generated": 400, "config": "config/config.yaml"},
    # the paper: 300 AD + 400 CN, 80 % train; 4 sets x 100 images (config/adni.yaml's settings)
    "paper": {"train_AD": 240, "train_CN": 320, "generated": 400, "config": "config/adni.yaml"},
}


def evaluate_overrides(config_file: str) -> dict:
    """The evaluate section a config file sets (schema defaults fill the rest)."""
    import yaml

    path = REPO / config_file
    return (yaml.safe_load(path.read_text()) or {}).get("evaluate") or {} if path.exists() else {}


def run_size(name: str, epochs: int, threads: int) -> dict:
    from brainmr.config import stage_config
    from brainmr.evaluate.config import ClassifierConfig, KdeConfig
    from brainmr.evaluate.images import flatten, rescale_foreground
    from brainmr.evaluate.judges.classifier import fit_cnn, predict_proba
    from brainmr.evaluate.judges.kde import fit_kde_model
    from brainmr.evaluate.judges.metrics import brain_mask, masked_nearest_neighbours
    from brainmr.evaluate.stats.binary import ad_labels
    from brainmr.evaluate.toy import toy_slices
    from brainmr.threads import limit_threads

    limit_threads(threads, torch=True)
    size = SIZES[name]
    overrides = evaluate_overrides(size["config"])
    configured = stage_config(ClassifierConfig, "evaluate", **overrides)
    kde_cfg = stage_config(KdeConfig, "evaluate", **overrides)
    cfg = stage_config(
        ClassifierConfig,
        "evaluate",
        **overrides | {"cnn_epochs": epochs, "cnn_patience": epochs + 1},
    )
    train = np.concatenate(
        [toy_slices("AD", size["train_AD"], seed=1), toy_slices("CN", size["train_CN"], seed=2)]
    )
    groups = np.array(["AD"] * size["train_AD"] + ["CN"] * size["train_CN"])
    labels = ad_labels(groups)
    half = size["generated"] // 2
    generated = np.concatenate([toy_slices("AD", half, seed=3), toy_slices("CN", half, seed=4)])
    timings: dict[str, float] = {}

    def timed(key, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        timings[key] = time.perf_counter() - start
        return result

    normalised = timed("normalise_s", lambda: np.stack([rescale_foreground(i) for i in train]))
    pixels = flatten(normalised)
    model = timed("kde_fit_s", fit_kde_model, pixels, groups, kde_cfg)
    timed("kde_score_s", model.score, flatten(generated))
    n_val = max(2, len(train) // 5)
    order = np.random.default_rng(0).permutation(len(train))
    fit, val = order[n_val:], order[:n_val]
    cnn, info = timed("cnn_train_s", fit_cnn, train[fit], labels[fit], train[val], labels[val], cfg)
    timed("cnn_predict_s", predict_proba, cnn, generated)
    timed("nn_corr_s", masked_nearest_neighbours, flatten(generated), pixels, brain_mask(pixels))
    per_epoch = timings["cnn_train_s"] / info["epochs_run"]
    return {
        "size": name,
        "n_train": len(train),
        "n_generated": len(generated),
        "pca_components": int(model.pca.n_components_),
        "cnn_epochs_run": info["epochs_run"],
        "cnn_s_per_epoch": per_epoch,
        "cnn_train_s_at_config_epochs": per_epoch * configured.cnn_epochs,
        "config_epochs": configured.cnn_epochs,
        "config": size["config"],
        "threads": threads,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    } | timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="CNN epochs actually run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--child", choices=list(SIZES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    if args.child:  # one size in this fresh process: print its figures as the last line
        print(json.dumps(run_size(args.child, args.epochs, args.threads)))
        return
    results = []
    for name in args.sizes:
        command = [sys.executable, __file__, "--child", name, "--epochs", str(args.epochs)]
        command += ["--threads", str(args.threads)]
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(result)
        print(
            f"[{name}] train {result['n_train']}, generated {result['n_generated']}, "
            f"{result['threads']} threads\n"
            f"  KDE fit {result['kde_fit_s']:.2f} s ({result['pca_components']} components), "
            f"score {result['kde_score_s']:.2f} s\n"
            f"  CNN {result['cnn_s_per_epoch']:.2f} s/epoch -> "
            f"{result['cnn_train_s_at_config_epochs']:.0f} s at {result['config_epochs']} epochs; "
            f"predict {result['cnn_predict_s']:.2f} s\n"
            f"  nearest-neighbour correlation {result['nn_corr_s']:.2f} s, "
            f"normalisation {result['normalise_s']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB"
        )
    if args.json:
        from brainmr import io

        io.write_json(args.json, {"benchmark": "evaluate", "results": results})


if __name__ == "__main__":
    main()
