"""brainmr.diffusion.loss: cached and uncached inputs give the same loss; caption dropout,
min-SNR weights, offset noise and the v-prediction target, each against a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, StableDiffusionPipeline
from tiny import dreambooth_cfg

from brainmr.diffusion.batches import load_instance_set
from brainmr.diffusion.common import cpu_generator, noise_target, slices_to_pixels
from brainmr.diffusion.loss import TrainingInputs, micro_step_loss, min_snr_weights, offset_noise

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def base(tiny_base):
    return StableDiffusionPipeline.from_pretrained(str(tiny_base))


def inputs_of(base, slices, prompts, *, cached: bool) -> TrainingInputs:
    return TrainingInputs(
        vae=base.vae,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        pixels=slices_to_pixels(slices, 32),
        prompts=prompts,
        cache_latents=cached,
        train_text=False,
    )


def loss_of(base, inputs, idx, **settings) -> float:
    sched = DDPMScheduler.from_config(base.scheduler.config)
    cfg = dreambooth_cfg(**settings)
    with torch.no_grad():
        loss = micro_step_loss(base.unet, inputs, sched, idx, len(idx), cpu_generator(0, 0, 0), cfg)
    return loss.item()


def test_cached_latents_give_the_same_loss(base, tiny_instances):
    data = load_instance_set(tiny_instances)
    idx = torch.tensor([0, 3, 5])
    losses = [
        loss_of(base, inputs_of(base, data.slices, data.prompts, cached=cached), idx)
        for cached in (True, False)
    ]
    assert np.isfinite(losses).all()
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


@pytest.mark.parametrize("cached", [True, False])
def test_caption_dropout_trains_on_the_empty_prompt(base, tiny_instances, cached):
    """Known answer: with caption_dropout 1 every item is conditioned on "" (the loss equals that
    of a set whose prompts are all empty); at 0.2 some items are, and the loss is that of a set
    with exactly those prompts emptied."""
    data = load_instance_set(tiny_instances)
    idx = torch.tensor([0, 3, 5, 6])
    masks = []

    def loss(prompts, **extra):
        inputs = inputs_of(base, data.slices, prompts, cached=cached)
        embed = inputs.embeddings
        inputs.embeddings = lambda i, empty=None: masks.append(empty) or embed(i, empty)
        return loss_of(base, inputs, idx, **extra)

    plain, empty = loss(data.prompts), loss([""] * len(data.prompts))
    assert plain != pytest.approx(empty, rel=1e-4)  # the prompt matters to this base
    assert loss(data.prompts, caption_dropout=1.0) == pytest.approx(empty, rel=1e-5)
    assert masks[-1].all()
    assert loss(data.prompts, caption_dropout=0.0) == pytest.approx(plain, rel=1e-5)
    assert masks[-1] is None  # nothing drawn: runs without dropout are what they were
    some = loss(data.prompts, caption_dropout=0.2)
    dropped = set(idx[masks[-1]].tolist())
    assert 0 < len(dropped) < len(idx)  # this seed drops some items, not all
    mixed = ["" if i in dropped else p for i, p in enumerate(data.prompts)]
    assert some == pytest.approx(loss(mixed), rel=1e-5)
    assert some != pytest.approx(plain, abs=1e-6) and some != pytest.approx(empty, abs=1e-6)


def test_min_snr_weights_known_answer():
    """Two timesteps with betas 0.5 and 0.75: alpha-bar 0.5 and 0.125, so SNR = abar / (1 - abar)
    is 1 and 1/7. At gamma 0.5 the weights min(SNR, gamma) / SNR are 0.5 and 1 (epsilon), and
    min(SNR, gamma) / (SNR + 1) are 0.25 and 1/8 (v-prediction)."""
    kw = dict(num_train_timesteps=2, beta_start=0.5, beta_end=0.75, beta_schedule="linear")
    t = torch.tensor([0, 1])
    torch.testing.assert_close(
        min_snr_weights(DDPMScheduler(**kw), t, 0.5), torch.tensor([0.5, 1.0])
    )
    v_pred = DDPMScheduler(prediction_type="v_prediction", **kw)
    torch.testing.assert_close(min_snr_weights(v_pred, t, 0.5), torch.tensor([0.25, 0.125]))


def test_offset_noise_shifts_whole_channels():
    noise = offset_noise((64, 4, 8, 8), cpu_generator(1), 0.5)
    per_channel_means = noise.mean(dim=(2, 3))
    assert per_channel_means.std() > 0.3  # a shared offset per (image, channel)
    assert torch.equal(
        offset_noise((2, 4, 8, 8), cpu_generator(1), 0.0),
        torch.randn((2, 4, 8, 8), generator=cpu_generator(1)),
    )


def test_min_snr_and_noise_offset_change_the_loss(base, tiny_instances):
    data = load_instance_set(tiny_instances)
    inputs = inputs_of(base, data.slices, data.prompts, cached=True)
    idx = torch.tensor([0, 3, 5])
    losses = {
        name: loss_of(base, inputs, idx, **extra)
        for name, extra in {
            "plain": {},
            "snr": {"snr_gamma": 0.05},  # most timesteps have SNR > 0.05: weights < 1
            "offset": {"noise_offset": 0.1},
        }.items()
    }
    assert np.isfinite(list(losses.values())).all()
    assert losses["snr"] != pytest.approx(losses["plain"])
    assert losses["offset"] != pytest.approx(losses["plain"])


def test_v_prediction_target():
    sched = DDPMScheduler(prediction_type="v_prediction")
    x, n, t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), torch.tensor([10, 900])
    assert torch.allclose(noise_target(sched, x, n, t), sched.get_velocity(x, n, t))
    assert noise_target(DDPMScheduler(), x, n, t) is n
