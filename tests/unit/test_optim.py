"""brainmr.diffusion.optim: parameter groups, the 8-bit AdamW guard, and the weight average
(diffusers' EMAModel): its arithmetic, and that a run's average is saved and survives a resume."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionPipeline
from tiny import dreambooth_cfg, killed_after_checkpoint, train, unet_weights

from brainmr.diffusion.optim import make_optimizer, parameter_groups, weight_average

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_text_encoder_gets_its_own_parameter_group(tiny_base):
    base = StableDiffusionPipeline.from_pretrained(str(tiny_base))
    trained = [base.unet, base.text_encoder]
    base.text_encoder.requires_grad_(True)
    groups = parameter_groups(trained, dreambooth_cfg(learning_rate=2e-4))
    assert [g["lr"] for g in groups] == [2e-4, 2e-4]  # unset: the UNet's rate
    assert len(groups[1]["params"]) == len(list(base.text_encoder.parameters()))
    cfg = dreambooth_cfg(learning_rate=0.0, text_encoder_learning_rate=1e-3)
    assert [g["lr"] for g in parameter_groups(trained, cfg)] == [0.0, 1e-3]
    assert len(parameter_groups(trained[:1], cfg)) == 1  # a frozen text encoder: no group


def test_8bit_adam_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: 8-bit AdamW can run")
    with pytest.raises(RuntimeError, match=r"use_8bit_adam.*CUDA"):
        make_optimizer([torch.nn.Parameter(torch.zeros(2))], learning_rate=1e-3, use_8bit_adam=True)


def test_weight_average_warms_up_and_round_trips():
    """EMAModel's arithmetic at decay 0.5: at update k (from 1) the decay is 0 for k = 1 (the
    average starts as the weights), then min(0.5, (1 + n) / (10 + n)) with n = k - 1, and the
    average moves by (1 - decay) of its distance to the weights."""
    param = torch.nn.Parameter(torch.zeros(3))
    assert weight_average([param], 0.0) is None  # off
    average = weight_average([param], decay=0.5)
    with torch.no_grad():
        param.fill_(1.0)
    average.step([param])  # k = 1: decay 0, a copy
    assert average.cur_decay_value == 0.0
    torch.testing.assert_close(average.shadow_params[0], torch.full((3,), 1.0))
    with torch.no_grad():
        param.fill_(3.0)
    average.step([param])  # k = 2: decay 2/11, 1 + (9/11) * 2 = 29/11
    assert average.cur_decay_value == pytest.approx(2 / 11)
    torch.testing.assert_close(average.shadow_params[0], torch.full((3,), 29 / 11))
    average.step([param])  # k = 3: decay 3/12, 29/11 + (3/4) * (4/11) = 32/11
    torch.testing.assert_close(average.shadow_params[0], torch.full((3,), 32 / 11))

    capped = weight_average([param], decay=0.5)
    with torch.no_grad():
        param.fill_(1.0)
    for _ in range(8):  # k = 1..8: the decay reaches 8/17 < 0.5
        capped.step([param])
    assert capped.cur_decay_value == pytest.approx(8 / 17)
    capped.step([param])  # k = 9: (1 + 8) / (10 + 8) = 0.5, the cap
    assert capped.cur_decay_value == 0.5
    with torch.no_grad():
        param.fill_(3.0)
    capped.step([param])  # k = 10: capped at 0.5, halfway from 1 to 3
    assert capped.cur_decay_value == 0.5
    torch.testing.assert_close(capped.shadow_params[0], torch.full((3,), 2.0))

    restored = weight_average([param], decay=0.5)
    restored.load_state_dict(capped.state_dict())
    assert restored.optimization_step == 10
    assert torch.equal(restored.shadow_params[0], capped.shadow_params[0])
    restored.copy_to([param])
    assert torch.equal(param.detach(), torch.full((3,), 2.0))


def test_weight_average_is_saved_and_survives_a_resume(tmp_path, tiny_base, tiny_instances):
    """The pipeline holds the moving average (a decay of ~0 gives the last weights, 0.9 others),
    and a run killed after a checkpoint resumes its average too: same weights as unkilled."""
    kw = dict(base_model=str(tiny_base), instances=tiny_instances)
    runs = {"plain": 0.0, "tiny": 1e-9, "ema": 0.9}
    for name, decay in runs.items():
        cfg = dreambooth_cfg(max_train_steps=4, ema_decay=decay)
        train(pipeline_dir=tmp_path / name, work_dir=tmp_path / f"work_{name}", cfg=cfg, **kw)
    plain, tiny, ema = (unet_weights(tmp_path / name) for name in runs)
    torch.testing.assert_close(tiny, plain, atol=1e-6, rtol=0)
    assert (ema - plain).abs().max() > 1e-4

    cfg = dreambooth_cfg(max_train_steps=4, ema_decay=0.9)
    with killed_after_checkpoint(), pytest.raises(KeyboardInterrupt):
        train(pipeline_dir=tmp_path / "b", work_dir=tmp_path / "work_b", cfg=cfg, **kw)
    train(pipeline_dir=tmp_path / "b", work_dir=tmp_path / "work_b", cfg=cfg, **kw)
    torch.testing.assert_close(unet_weights(tmp_path / "b"), ema, atol=1e-5, rtol=0)
