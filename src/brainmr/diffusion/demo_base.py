"""The demo's tiny Stable-Diffusion-architecture base, built from configs (no download): a
word-level CLIP tokenizer on the paper's words, an untrained VAE, UNet and CLIP text model at the
config's sizes, and the pipeline assembled from them. ``brainmr.diffusion.demo_pretrain`` then
trains it on the corpus of ``brainmr.diffusion.demo_corpus``."""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections import Counter
from pathlib import Path

import torch

from brainmr import io
from brainmr.diffusion.config import DemoBaseConfig

log = logging.getLogger(__name__)

# The tokenizer's words: the paper's prompts, the corpus captions, a few common words; every other
# word still tokenizes (letter by letter) since every byte is in the vocabulary.
VOCABULARY_WORDS = (
    "ad cn a an mri brain adni coronal slice t1 weighted white circle gray grey square noise "
    "the of and with in on photo image picture scan axial sagittal head black background healthy "
    "normal alzheimer alzheimer's disease dementia patient subject high quality"
).split()
MAX_PROMPT_TOKENS = 77  # CLIP's context length
SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")


def word_merges(words: list[str]) -> list[tuple[str, str]]:
    """BPE merges until every word is one token: the most frequent adjacent pair first, ties
    broken by the pair's text. The same words give the same merges in every process (the
    tokenizers library's trainer breaks ties in hash order, which changes from one process to
    the next: the demo base's token ids, hence its weights, differed between runs)."""
    words = [list(w[:-1]) + [w[-1] + "</w>"] for w in words]
    merges = []
    while pairs := Counter(p for w in words for p in zip(w, w[1:], strict=False)):
        pair = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(pair)
        words = [_merge_pair(w, pair) for w in words]
    return merges


def _merge_pair(word: list[str], pair: tuple[str, str]) -> list[str]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def write_tokenizer_files(folder: Path) -> None:
    """A small word-level BPE vocabulary (each listed word one token, split as CLIP's
    pre-tokeniser splits text) written as vocab.json + merges.txt into ``folder``: the special
    tokens, every byte-level character alone and word-final (so that no character of any prompt
    maps to the unknown token), then the merges' products."""
    from tokenizers import pre_tokenizers
    from transformers.models.clip.tokenization_clip import CLIPTokenizer

    split = CLIPTokenizer().backend_tokenizer.pre_tokenizer  # CLIP's, empty vocabulary
    words = [w for w, _ in split.pre_tokenize_str(" ".join(VOCABULARY_WORDS).lower())]
    merges = word_merges(list(dict.fromkeys(words)))
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = [*SPECIAL_TOKENS, *alphabet, *(c + "</w>" for c in alphabet)]
    tokens += [a + b for a, b in merges]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_tokenizer(folder: Path):
    """A CLIPTokenizer on our vocabulary. transformers 5.x: ``CLIPTokenizer(vocab_file=...)``
    silently builds a 2-token tokenizer, so load from a folder."""
    from transformers import CLIPTokenizer

    write_tokenizer_files(folder)
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=MAX_PROMPT_TOKENS)


def _norm_groups(channels: list[int]) -> int:
    return math.gcd(8, *channels)


def build_models(cfg: DemoBaseConfig, tokenizer):
    """Untrained VAE, UNet and CLIP text model of SD's architecture at the config's sizes."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    n_vae, n_unet = len(cfg.vae_channels), len(cfg.unet_channels)
    vae_factor = 2 ** (n_vae - 1)
    multiple = vae_factor * 2 ** (n_unet - 1)
    if cfg.resolution % multiple:
        raise ValueError(
            f"demo_base.resolution {cfg.resolution} must be a multiple of {multiple} "
            f"for VAE {cfg.vae_channels} and UNet {cfg.unet_channels}"
        )
    if cfg.vae_crop is not None and cfg.vae_crop % vae_factor:
        raise ValueError(
            f"demo_base.vae_crop {cfg.vae_crop} must be a multiple of the VAE's downsampling "
            f"{vae_factor} (vae_channels {cfg.vae_channels})"
        )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n_vae,
        up_block_types=("UpDecoderBlock2D",) * n_vae,
        block_out_channels=tuple(cfg.vae_channels),
        latent_channels=cfg.latent_channels,
        layers_per_block=1,
        norm_num_groups=_norm_groups(cfg.vae_channels),
        sample_size=cfg.resolution,
    )
    # Attention off the highest-resolution level: there it costs most of the UNet's time (CPU).
    unet = UNet2DConditionModel(
        sample_size=cfg.resolution // vae_factor,
        in_channels=cfg.latent_channels,
        out_channels=cfg.latent_channels,
        block_out_channels=tuple(cfg.unet_channels),
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n_unet - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n_unet - 1) + ("UpBlock2D",),
        layers_per_block=1,
        cross_attention_dim=cfg.text_hidden,
        attention_head_dim=tuple(max(1, c // 32) for c in cfg.unet_channels),  # = heads (SD 1.x)
        norm_num_groups=_norm_groups(cfg.unet_channels),
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=cfg.text_hidden,
            intermediate_size=4 * cfg.text_hidden,
            num_hidden_layers=cfg.text_layers,
            num_attention_heads=max(1, cfg.text_hidden // 32),
            max_position_embeddings=MAX_PROMPT_TOKENS,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    return vae, unet, text_encoder


def sd_training_scheduler():
    """SD 1.x's noise schedule (scaled-linear betas, 1000 steps, epsilon prediction)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        prediction_type="epsilon",
        steps_offset=1,
    )


def assemble_pipeline(*, vae, text_encoder, tokenizer, unet):
    """An SD pipeline from its parts, with SD's training scheduler and no safety checker."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=sd_training_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_demo_base(out_dir: Path, *, cfg: DemoBaseConfig) -> None:
    """Write an untrained SD-architecture pipeline (``save_pretrained``) into ``out_dir``."""
    torch.manual_seed(cfg.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(Path(tmp) / "tokenizer")
    vae, unet, text_encoder = build_models(cfg, tokenizer)
    pipe = assemble_pipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet)
    with io.atomic_dir(out_dir) as tmp:
        pipe.save_pretrained(tmp)
    log.info("untrained demo base written to %s", out_dir)
