"""DreamBooth's training loss: latents and prompt embeddings of a batch (cached where they do
not change), the noise (with the optional offset), and the noise-prediction MSE with prior
preservation, min-SNR weighting and caption dropout."""

from __future__ import annotations

import torch

from brainmr.diffusion.common import encode_prompts, noise_target, scale_latents, tokenize

ENCODE_CHUNK = 16


class TrainingInputs:
    """Latents and prompt embeddings of a batch. The VAE is always frozen: with
    ``cache_latents`` its posterior means/stds are computed once and a latent is sampled per
    step (mean + std * noise: the same draw ``latent_dist.sample`` makes). Prompt embeddings
    are cached too unless the text encoder is trained (``train_text``)."""

    def __init__(self, *, vae, text_encoder, tokenizer, pixels, prompts, cache_latents, train_text):
        self.vae, self.text_encoder, self.tokenizer = vae, text_encoder, tokenizer
        self.pixels, self.prompts = pixels, list(prompts)
        self.cache_latents, self.train_text = cache_latents, train_text
        self.cache_embeddings = cache_latents and not train_text
        self.device, self.dtype = vae.device, vae.dtype
        if cache_latents:
            self.mean, self.std = self._posterior(pixels)
            self.pixels = None  # not needed again (SD at 512 px: 3 MB per image)
        if self.cache_embeddings:
            unique = sorted(set(self.prompts))
            self.prompt_index = torch.tensor([unique.index(p) for p in self.prompts])
            with torch.no_grad():
                self.embeddings_cache = encode_prompts(text_encoder, tokenizer, unique)
        self.empty_cache = None  # the empty prompt's, on first use (caption dropout)

    @torch.no_grad()
    def _posterior(self, pixels):
        dists = [
            self.vae.encode(chunk.to(self.device, self.dtype)).latent_dist
            for chunk in pixels.split(ENCODE_CHUNK)
        ]
        return torch.cat([d.mean for d in dists]), torch.cat([d.std for d in dists])

    def latents(self, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.cache_latents:
            mean, std = self.mean[idx], self.std[idx]
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(self.device)
            sample = mean + std * eps
        else:
            with torch.no_grad():
                dist = self.vae.encode(self.pixels[idx].to(self.device, self.dtype)).latent_dist
                sample = dist.sample(generator=generator)
        return scale_latents(sample, self.vae).float()

    def embeddings(self, idx: torch.Tensor, empty: torch.Tensor | None = None) -> torch.Tensor:
        """Prompt embeddings of items ``idx``; where the boolean mask ``empty`` is set, those of
        the empty prompt instead (caption dropout)."""
        if self.cache_embeddings:
            out = self.embeddings_cache[self.prompt_index[idx]]
            if empty is not None and empty.any():
                if self.empty_cache is None:
                    with torch.no_grad():
                        self.empty_cache = encode_prompts(self.text_encoder, self.tokenizer, [""])
                out = torch.where(empty[:, None, None], self.empty_cache.to(out.dtype), out)
            return out
        prompts = [self.prompts[i] for i in idx.tolist()]
        if empty is not None:
            prompts = ["" if blank else p for p, blank in zip(prompts, empty.tolist(), strict=True)]
        ids = tokenize(self.tokenizer, prompts)
        with torch.set_grad_enabled(self.train_text):
            return self.text_encoder(ids.to(self.text_encoder.device))[0]


def min_snr_weights(scheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample loss weights of min-SNR-gamma (Hang et al. 2023): min(SNR, gamma) / SNR for
    epsilon prediction, min(SNR, gamma) / (SNR + 1) for v-prediction."""
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, timesteps)
    clipped = torch.minimum(snr, torch.full_like(snr, gamma))
    if scheduler.config.prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped / snr


def offset_noise(shape, generator: torch.Generator, offset: float) -> torch.Tensor:
    """Gaussian noise plus ``offset`` times a per-(sample, channel) constant, which lets the model
    learn to shift a whole image's mean (an MRI slice is mostly black background)."""
    noise = torch.randn(shape, generator=generator)
    if offset > 0:
        noise = noise + offset * torch.randn((shape[0], shape[1], 1, 1), generator=generator)
    return noise


def _mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    per_item = ((pred - target) ** 2).mean(dim=tuple(range(1, pred.ndim)))
    return per_item.mean() if weights is None else (per_item * weights).mean()


def micro_step_loss(unet, inputs: TrainingInputs, scheduler, idx, n_instance, generator, cfg):
    """Noise-prediction MSE of one micro-batch (instance items first, then class items whose
    loss is weighted by ``prior_loss_weight``), min-SNR weighted, with offset noise and caption
    dropout where the config asks."""
    latents = inputs.latents(idx, generator)
    noise = offset_noise(latents.shape, generator, cfg.noise_offset).to(latents.device)
    steps = scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (len(idx),), generator=generator).to(latents.device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    empty = None  # drawn only when asked, so runs without dropout draw what they always did
    if cfg.caption_dropout > 0:
        empty = torch.rand(len(idx), generator=generator) < cfg.caption_dropout
    pred = unet(noisy, timesteps, inputs.embeddings(idx, empty)).sample.float()
    target = noise_target(scheduler, latents, noise, timesteps).float()
    weights = min_snr_weights(scheduler, timesteps, cfg.snr_gamma) if cfg.snr_gamma > 0 else None
    part = slice(None, n_instance)
    loss = _mse(pred[part], target[part], None if weights is None else weights[part])
    if len(idx) > n_instance:
        rest = slice(n_instance, None)
        prior = _mse(pred[rest], target[rest], None if weights is None else weights[rest])
        loss = loss + cfg.prior_loss_weight * prior
    return loss
