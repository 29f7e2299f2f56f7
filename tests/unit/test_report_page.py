"""The report's global page: its methods text is generated from the run's config."""

from __future__ import annotations

from pathlib import Path

import jinja2
import yaml
from jsonschema import Draft202012Validator, validators

REPO = Path(__file__).resolve().parents[2]


def validated(*config_files: str, **changes) -> dict:
    """Config files merged in order (as --configfile a b does), with the schema's defaults
    filled in, as Snakemake's validate() leaves it."""
    from snakemake.utils import update_config

    schema = yaml.safe_load(
        (REPO / "workflow/schemas/config.schema.yaml").read_text(encoding="utf-8")
    )

    def set_defaults(validator, properties, instance, schema):
        for key, spec in properties.items():
            if isinstance(instance, dict) and "default" in spec:
                instance.setdefault(key, spec["default"])
        yield from Draft202012Validator.VALIDATORS["properties"](
            validator, properties, instance, schema
        )

    filling = validators.extend(Draft202012Validator, {"properties": set_defaults})
    config = {}
    for config_file in config_files:
        update_config(config, yaml.safe_load((REPO / config_file).read_text(encoding="utf-8")))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[leaf] = value
    filling(schema).validate(config)
    return config


def render(config: dict) -> str:
    class Snakemake:
        pass

    Snakemake.config = config
    text = (REPO / "workflow/report/workflow.rst").read_text(encoding="utf-8")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string(text).render(snakemake=Snakemake, categories={}, files=[])


def test_methods_text_follows_the_demo_config():
    config = validated("config/config.yaml")
    text = render(config)
    assert "SYNTHETIC DATA" in text
    db = config["dreambooth"]
    assert f"{db['max_train_steps']} steps at batch {db['train_batch_size']}" in text
    assert "full fine-tune of the UNet and the text encoder" in text
    assert f"{config['generate']['n_images']} images per condition" in text
    assert '"AD, a MRI brain, ADNI2"' in text and "seed 0, 1, 2" not in text
    assert "median - 5.0 x MAD" in text


def test_methods_text_follows_a_changed_config():
    config = validated(
        "config/adni.yaml",
        **{
            "dreambooth.lora_rank": 8,
            "evaluate.bandwidth_rule": "per_class",
            "dreambooth.snr_gamma": 5.0,
            "dreambooth.caption_dropout": 0.1,
            "dreambooth.ema_decay": 0.99,
            "evaluate.cnn_input_size": 80,
        },
    )
    text = render(config)
    assert "reading every image at 80 x 80 px" in text
    assert "SYNTHETIC" not in text  # the real run carries no banner
    assert "LoRA rank 8" in text and "full fine-tune" not in text
    assert "min-SNR weighting (gamma 5.0)" in text
    assert "caption dropout 0.1, weights averaged (EMA decay 0.99)" in text
    assert "a bandwidth per class" in text
    assert "2000 steps at batch 4" in text


def test_methods_text_names_the_remedies_and_their_options():
    text = render(validated("config/config.yaml", "config/remedies_demo.yaml"))
    assert "nobrain" not in text  # dropped by the layered file (null)
    assert "balance (AD:" in text and "class balance oversample" in text
    assert "one model per class" in text and "prior preservation)" in text
    assert "Remedies study: balance, separate, rare, negative, prior, each against brain" in text


def test_the_demo_cnn_reads_at_most_half_the_generators_resolution():
    """README: at 48 px (3/4 of the 64-px generator) even the train reals through the demo VAE
    fell out of one seed's CNN distribution; at half the resolution they stay in every seed."""
    config = validated("config/config.yaml")
    assert 2 * config["evaluate"]["cnn_input_size"] <= config["dreambooth"]["resolution"]
