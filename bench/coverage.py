"""How far can a generator at a given resolution get into the CNN's distribution? Fidelity in one
seed's CNN features (the measure of Table 1's out-of-distribution guard) against the held-out
reals, for: the real train slices; the same slices taken down to R px and back to 160 px (what a
perfect generator at R px could at best deliver); the same slices through the run's VAE at its
resolution (encoded and decoded: what a perfect generator with that VAE could at best deliver);
and the generated sets of a finished run.

    python bench/coverage.py results [--seed 0] [--sizes 64 96 128] [--json F]

A generated set below half the train reals' precision or coverage is marked out of distribution.
Where the train reals through R px already fall below that, no generator at R px can pass."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from _common import machine, write_json  # bench/ is this script's folder
from PIL import Image

from brainmr import GROUPS, SLICE_SIZE
from brainmr.config import stage_config
from brainmr.evaluate.config import JudgeConfig
from brainmr.evaluate.images import load_normalised, rescale_foreground
from brainmr.evaluate.judges.classifier import extract_features, load_classifier
from brainmr.evaluate.judges.sets import matched_fidelity


def through_resolution(images: np.ndarray, size: int) -> np.ndarray:
    """Each image down to size x size (bilinear) and back to the slice size (bicubic)."""
    out = []
    for image in images:
        small = Image.fromarray(image).resize((size, size), Image.BILINEAR)
        back = small.resize((SLICE_SIZE, SLICE_SIZE), Image.BICUBIC)
        out.append(rescale_foreground(np.asarray(back, dtype=np.float32)))
    return np.stack(out)


def through_vae(images: np.ndarray, vae) -> np.ndarray:
    """Each image encoded (posterior mean) and decoded by the VAE at its own resolution, then
    back to the slice size as generate_images writes it."""
    import torch

    from brainmr.diffusion.common import resize_image, rgb_to_gray, slices_to_pixels

    with torch.no_grad():
        pixels = slices_to_pixels(images, vae.config.sample_size)
        decoded = vae.decode(vae.encode(pixels).latent_dist.mean).sample
    rgb = ((decoded + 1.0) / 2.0).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return np.stack([rescale_foreground(resize_image(g, SLICE_SIZE)) for g in rgb_to_gray(rgb)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="a finished run's results/ folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128])
    parser.add_argument("--vae", type=Path, help="a VAE folder (default: the run's demo base)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = args.results
    vae_dir = args.vae or results / "base/demo/vae"
    vae = None
    if vae_dir.is_dir():
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(str(vae_dir)).eval()
    cfg = stage_config(JudgeConfig, "evaluate")
    scans = pd.read_csv(results / "cohort/scans.tsv", sep="\t")
    model = load_classifier(results / f"evaluate/seed{args.seed}/classifier/model.pt")

    def features(images: np.ndarray) -> np.ndarray:
        return extract_features(model, images, cfg.cnn_batch_size)

    def slices(group: str, split: str) -> np.ndarray:
        rows = scans[(scans.group == group) & (scans.split == split)]
        return load_normalised(results / f"slices/{s}.npy" for s in rows.subject)

    figures = {}
    print(
        f"machine: {machine()}; CNN of seed {args.seed} (reads {model.input_size} px); "
        "reference: held-out reals"
    )
    for group in GROUPS:
        reference = features(slices(group, "test"))
        train = slices(group, "train")
        candidates = {"train reals": features(train)}
        for size in args.sizes:
            candidates[f"train reals via {size} px"] = features(through_resolution(train, size))
        if vae is not None:
            candidates[f"train reals via the VAE at {vae.config.sample_size} px"] = features(
                through_vae(train, vae)
            )
        for folder in sorted(results.glob(f"generated/*/*/seed{args.seed}/{group}")):
            images = load_normalised(sorted(folder.glob("*.png")))
            # generated/<condition>/<settings key>/seed<s>/<class>
            name = folder.parents[2].name
            key = f" ({folder.parents[1].name})" if f"generated {name}" in candidates else ""
            candidates[f"generated {name}{key}"] = features(images)
        for name, feats in candidates.items():
            m = matched_fidelity(reference, feats, cfg)
            figures[f"{group}: {name}"] = {k: round(float(m[k]), 3) for k in m}
            print(
                f"{group} {name:36s} precision {m['precision']:.2f} coverage "
                f"{m['coverage']:.2f} FD {m['frechet_distance']:.1f} (n={len(feats)})"
            )
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
