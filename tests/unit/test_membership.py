"""brainmr.diffusion.membership and the privacy study's known answers on a real tiny model: a
DreamBooth model trained far past convergence on 4 slices tells them from 4 unseen ones (attack
AUC near 1) and copies them; a shuffled member list, or the base that saw none of them, gives an
AUC whose interval holds 0.5, and the base copies nobody."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny import TINY_BASE, dreambooth_cfg, train

from brainmr import SLICE_SIZE, io
from brainmr.config import stage_config
from brainmr.diffusion.common import resize_image
from brainmr.diffusion.config import DemoBaseConfig, MembershipConfig
from brainmr.diffusion.demo_base import build_demo_base
from brainmr.diffusion.demo_pretrain import pretrain_demo_base
from brainmr.diffusion.generate import load_pipeline, sample_images
from brainmr.diffusion.membership import denoising_losses, measure_membership
from brainmr.evaluate.images import flatten, load_normalised, rescale_foreground
from brainmr.evaluate.judges.metrics import brain_mask, masked_nearest_neighbours
from brainmr.evaluate.studies.privacy import attack_figures, copies_per_subject

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]

PROMPT = "AD, a MRI brain"
MEMBERSHIP = MembershipConfig(timesteps=[100, 200, 300, 400], noise_draws=4, seed=0, batch_size=8)
# blob centres (row, col) of the 4 members and of the 4 slices the model never sees: each near
# a member, so that unseen subjects resemble the trained ones as real subjects do (nearest-member
# r 0.62-0.70) and the memorization threshold they set is a demanding one
MEMBERS = [(50, 50), (50, 110), (110, 50), (110, 110)]
OTHERS = [(58, 50), (50, 118), (118, 50), (110, 100)]


def disc_with_blob(centre: tuple[int, int]) -> np.ndarray:
    """A grey disc (the 'brain') holding a bright square blob: subjects differ by the blob."""
    yy, xx = np.mgrid[0:SLICE_SIZE, 0:SLICE_SIZE]
    image = np.where((yy - 80) ** 2 + (xx - 80) ** 2 < 70**2, 0.4, 0.0)
    row, col = centre
    image[row - 14 : row + 14, col - 14 : col + 14] = 1.0
    return image.astype(np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The tiny base (pretrained on 48 discs with blobs anywhere: it draws discs with blobs, not
    the members) and a DreamBooth model trained 300 steps on the 4 members, far past what 4
    slices need: paths, and the candidates table."""
    root = tmp_path_factory.mktemp("membership")
    rows = []
    for i, centre in enumerate(MEMBERS + OTHERS):
        path = root / f"S{i}.npy"
        io.save_npy(path, disc_with_blob(centre))
        rows.append(
            {"subject": f"S{i}", "group": "AD", "path": str(path), "prompt": PROMPT}
            | {"member": i < len(MEMBERS)}
        )
    candidates = pd.DataFrame(rows)
    cfg = stage_config(
        DemoBaseConfig,
        "demo_base",
        **(TINY_BASE | {"vae_steps": 300, "unet_steps": 400, "learning_rate": 2e-3}),
    )
    build_demo_base(root / "untrained", cfg=cfg)
    rng = np.random.default_rng(0)
    corpus = [disc_with_blob(tuple(rng.integers(30, 130, 2))) for _ in range(48)]
    with open(root / "corpus.npz", "wb") as fh:
        images = np.stack([resize_image(image, 32) for image in corpus])
        np.savez_compressed(fh, images=images, captions=np.array(["a disc"] * len(images)))
    pretrain_demo_base(
        base_dir=root / "untrained", corpus_npz=root / "corpus.npz", out_dir=root / "base", cfg=cfg
    )
    members = candidates[candidates["member"]][["path", "group", "prompt", "subject"]]
    train(
        base_model=str(root / "base"),
        instances=members,
        pipeline_dir=root / "model",
        work_dir=root / "work",
        cfg=dreambooth_cfg(max_train_steps=300, train_batch_size=4, learning_rate=1e-3),
    )
    return {"base": root / "base", "model": root / "model", "candidates": candidates}


def attack(models, name: str, member=None) -> dict:
    table = measure_membership(
        model_dir=models[name], candidates=models["candidates"], cfg=MEMBERSHIP, resolution=32
    )
    member = table["member"].to_numpy(bool) if member is None else member
    return attack_figures(table["loss"].to_numpy(), member, n_boot=2000, seed=0)


def copies(models, name: str) -> pd.DataFrame:
    """Copies per member of 8 images drawn from ``name``, above the threshold the 4 unseen
    slices set (their largest nearest-member correlation, as the 0.99 quantile of 4 is)."""
    candidates = models["candidates"]
    train = candidates[candidates["member"]]
    reference = flatten(load_normalised(train["path"]))
    mask = brain_mask(reference)
    unseen = flatten(load_normalised(candidates.loc[~candidates["member"], "path"]))
    threshold = float(np.quantile(masked_nearest_neighbours(unseen, reference, mask)[1], 0.99))
    pipe = load_pipeline(models[name], scheduler="dpmsolver++")
    drawn = sample_images(
        pipe, prompt=PROMPT, seeds=list(range(8)), num_inference_steps=20,
        guidance_scale=1.0, resolution=32,
    )  # fmt: skip
    images = [rescale_foreground(resize_image(i, SLICE_SIZE).clip(0, 1)) for i in drawn]
    index, corr = masked_nearest_neighbours(flatten(np.stack(images)), reference, mask)
    generated = pd.DataFrame({"nn_path": train["path"].to_numpy()[index], "nn_corr": corr})
    return copies_per_subject(generated, train, threshold)


def test_a_model_trained_far_past_convergence_gives_its_members_away(models):
    figures = attack(models, "model")
    assert figures["auc"] >= 0.9 and figures["n_members"] == 4
    # the same losses with the member list shuffled (two members, two others): chance again
    shuffled = np.array([True, False, True, False, False, True, False, True])
    assert attack(models, "model", shuffled)["auc_low"] <= 0.5
    copied = copies(models, "model")
    assert copied["copies"].sum() >= 3 and (copied["copies"] > 0).sum() >= 2


def test_the_untrained_base_tells_nobody_and_copies_nobody(models):
    figures = attack(models, "base")
    assert figures["auc_low"] <= 0.5 <= figures["auc_high"]
    assert copies(models, "base")["copies"].sum() == 0


def test_every_slice_gets_the_same_noise_so_equal_slices_get_equal_losses(models):
    """Two identical slices with one prompt: identical losses (the noise is shared, not drawn
    per slice); a different prompt changes them; a timestep outside the schedule is refused."""
    pipe = load_pipeline(models["model"], scheduler="ddpm")
    image = disc_with_blob(MEMBERS[0])
    slices = np.stack([image, image, image])
    losses = denoising_losses(pipe, slices, [PROMPT, PROMPT, "CN, a MRI brain"], MEMBERSHIP, 32)
    assert losses[0] == pytest.approx(losses[1], abs=1e-7) and losses[0] != losses[2]
    late = MembershipConfig(timesteps=[1000], noise_draws=1, seed=0, batch_size=8)
    with pytest.raises(ValueError, match="outside the model"):
        denoising_losses(pipe, slices, [PROMPT] * 3, late, 32)
