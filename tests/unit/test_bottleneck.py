"""brainmr.diffusion.bottleneck: held-out reals through the base's VAE at the training
resolution (the reconstruction-ceiling sets), on a tiny base built in process."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny import write_blob_slices

from brainmr import io
from brainmr.cohort.sets import generated_table
from brainmr.diffusion.bottleneck import load_vae, through_vae, write_ceiling_sets
from brainmr.diffusion.common import resize_image, rgb_to_gray, slices_to_pixels
from brainmr.diffusion.generate import load_pipeline
from brainmr.evaluate.ceiling import bottleneck_name, ceiling_condition, is_ceiling


@pytest.fixture(scope="module")
def base(tiny_base):
    return tiny_base


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    groups = [("AD", 40), ("AD", 50), ("CN", 45), ("CN", 55), ("CN", 60)]
    rows = [{"subject": f"S{i}", "group": g, "radius": r} for i, (g, r) in enumerate(groups)]
    return write_blob_slices(tmp_path_factory.mktemp("slices"), rows)


def test_names_tell_ceiling_sets_apart():
    assert bottleneck_name(64) == "vae64" and ceiling_condition("vae64") == "ceiling_vae64"
    assert is_ceiling("ceiling_vae64") and not is_ceiling("brain") and not is_ceiling("real")


def test_through_vae_is_the_generators_path(base, held_out):
    """A ceiling image is what the generator would write had it drawn the slice's latent: the
    pipeline's own decode (its VAE at the latent scale, then its image processor's
    postprocess), gray and back to 160 px as generate_images writes an image."""
    vae = load_vae(str(base)).eval()
    slices = np.stack([io.load_npy(p) for p in held_out["path"]])
    out = through_vae(slices, vae, 32, batch_size=2)
    assert out.shape == (5, 160, 160) and out.min() >= 0 and out.max() <= 1
    pipe = load_pipeline(base, scheduler="dpmsolver++")
    scale = pipe.vae.config.scaling_factor
    with torch.no_grad():
        latents = pipe.vae.encode(slices_to_pixels(slices[:2], 32)).latent_dist.mean * scale
        decoded = pipe.vae.decode(latents / scale, return_dict=False)[0]  # as the pipeline does
    images = pipe.image_processor.postprocess(decoded, output_type="np")
    for i, image in enumerate(rgb_to_gray(np.asarray(images, dtype=np.float32))):
        np.testing.assert_allclose(out[i], resize_image(image, 160).clip(0, 1), atol=1e-5)
    assert not np.allclose(out[0], slices[0], atol=0.05)  # the tiny VAE changes the image


def test_ceiling_sets_are_written_like_generated_sets(tmp_path, base, held_out):
    dirs = {g: tmp_path / "ceiling" / "vae32" / g for g in ("AD", "CN")}
    write_ceiling_sets(
        base_model=str(base),
        test=held_out,
        resolution=32,
        condition=ceiling_condition("vae32"),
        out_dirs=dirs,
    )
    ad, cn = generated_table(dirs["AD"]), generated_table(dirs["CN"])
    assert len(ad) == 2 and len(cn) == 3
    assert set(ad["condition"]) == {"ceiling_vae32"} and set(cn["group"]) == {"CN"}
    assert ad["subject"].tolist() == ["S0", "S1"]  # one image per held-out subject
    assert io.load_png_gray(ad["path"].iloc[0]).shape == (160, 160)
    with pytest.raises(ValueError, match="one folder per class"):
        write_ceiling_sets(
            base_model=str(base), test=held_out, resolution=32, condition="ceiling_x", out_dirs={}
        )
