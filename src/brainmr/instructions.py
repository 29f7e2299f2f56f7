"""Prompts written from each subject's age and sex: instructions beyond the class.

A condition's prompt is a template when it holds fields in braces, e.g.
``"{group}, {age_bin} year old {sex_word}, a MRI brain, ADNI2"``. DreamBooth trains each slice
with its own subject's prompt; generation asks for n images per class whose (age bin, sex) are
drawn from the held-out reals of that class (or from a grid in config), each image with its own
prompt and its request in the manifest. Fixed prompts (the paper) are templates with no field.

Fields: ``group``, ``age`` (whole years), ``age_bin`` (the start of the subject's bin of
``age_bin_years``), ``age_bin_centre``, ``sex`` (F/M as in the LONI CSV), ``sex_word`` (from
config, e.g. woman/man). Used at parse time: no heavy imports.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from brainmr import LABELS

FIELDS = ("group", "age", "age_bin", "age_bin_centre", "sex", "sex_word")


@dataclass(frozen=True)
class InstructionConfig:
    """How a template's fields are written and what is requested (the schema's
    ``instructions`` section, the only home of its defaults)."""

    age_bin_years: int
    sex_words: dict
    requests: str  # heldout: drawn from the held-out reals; grid: ages x sexes
    grid_ages: list
    grid_sexes: list
    baseline: str | None  # a class-only condition, the "not following" baseline
    seed: int


def template_fields(prompt: str) -> list[str]:
    """The fields a prompt names, in order; a malformed template is a clear error."""
    try:
        parsed = list(string.Formatter().parse(prompt))
    except ValueError as err:
        raise ValueError(f"prompt template {prompt!r}: {err}") from err
    names = [name for _, name, _, _ in parsed if name is not None]
    bad = [n for n in names if n not in FIELDS]
    if "" in names or bad:
        raise ValueError(
            f"prompt template {prompt!r}: unknown field(s) {bad or ['{}']}; fields: {list(FIELDS)}"
        )
    return names


def is_template(prompt: str) -> bool:
    return bool(template_fields(prompt))


def age_bin(age: float, width: int) -> int:
    return int(math.floor(float(age) / width) * width)


def subject_fields(row: Mapping, cfg: InstructionConfig, names: list[str]) -> dict:
    """The values of ``names`` for one subject (a scans-sheet row); a missing or malformed age
    or sex names the subject and the field."""
    subject = row.get("subject", "?")
    out = {"group": str(row.get("group"))}
    if {"age", "age_bin", "age_bin_centre"} & set(names):
        try:
            age = float(row.get("age"))
        except (TypeError, ValueError):
            age = math.nan
        if not math.isfinite(age):
            raise ValueError(f"subject {subject}: field 'age' is missing or not a number")
        start = age_bin(age, cfg.age_bin_years)
        out |= {"age": int(age), "age_bin": start, "age_bin_centre": start + cfg.age_bin_years // 2}
    if {"sex", "sex_word"} & set(names):
        sex = str(row.get("sex", "")).strip()
        if sex not in cfg.sex_words:
            raise ValueError(
                f"subject {subject}: field 'sex' is {sex or 'missing'!r}, expected one of "
                f"{sorted(cfg.sex_words)}"
            )
        out |= {"sex": sex, "sex_word": cfg.sex_words[sex]}
    return {k: out[k] for k in names}


def render(prompt: str, row: Mapping, cfg: InstructionConfig | None) -> str:
    """A subject's prompt: the template with its fields filled (a fixed prompt unchanged)."""
    names = template_fields(prompt)
    if not names:
        return prompt
    if cfg is None:
        raise ValueError(f"prompt template {prompt!r} needs the instructions settings")
    return prompt.format(**subject_fields(row, cfg, names))


def request_table(
    prompt: str, heldout: pd.DataFrame, group: str, n: int, cfg: InstructionConfig, seed: int
) -> pd.DataFrame:
    """n requests of one class: requested_age (the bin's centre), requested_sex, age_bin and the
    rendered prompt per image. heldout mode draws (age bin, sex) pairs, with replacement, from
    the held-out reals of ``group``; grid mode cycles through ages x sexes."""
    if cfg.requests == "grid":
        if not cfg.grid_ages:
            raise ValueError("instructions.requests = grid needs instructions.grid_ages")
        pairs = [(a, s) for a in cfg.grid_ages for s in cfg.grid_sexes]
        rows = [
            {"group": group, "age": pairs[i % len(pairs)][0], "sex": pairs[i % len(pairs)][1]}
            for i in range(n)
        ]
    else:
        pool = heldout[heldout["group"] == group]
        if pool.empty:
            raise ValueError(f"no held-out {group} subjects to draw instruction requests from")
        rng = np.random.default_rng([int(cfg.seed), int(seed), LABELS.index(group)])  # per class
        picks = rng.integers(0, len(pool), size=n)
        rows = [pool.iloc[int(i)].to_dict() | {"group": group} for i in picks]
    out = []
    for row in rows:
        values = subject_fields(row, cfg, ["age_bin", "age_bin_centre", "sex"])
        out.append(
            {
                "requested_age": values["age_bin_centre"],
                "requested_sex": values["sex"],
                "age_bin": values["age_bin"],
                "prompt": render(prompt, row, cfg),
            }
        )
    return pd.DataFrame(out, columns=["requested_age", "requested_sex", "age_bin", "prompt"])


def write_requests(
    out_tsv,
    *,
    prompts: dict[str, str],
    heldout: pd.DataFrame,
    n: int,
    cfg: InstructionConfig,
    seed: int,
) -> None:
    """Every class's requests of a templated condition for one replicate seed (request_table
    per class of ``prompts``), in one table with a ``group`` column: written by a rule, read by
    the generation rule, so nothing is drawn while the workflow is parsed."""
    from brainmr.io import write_tsv

    tables = [
        request_table(prompt, heldout, group, n, cfg, seed).assign(group=group)
        for group, prompt in prompts.items()
    ]
    write_tsv(out_tsv, pd.concat(tables, ignore_index=True))


def read_requests(path) -> dict[str, pd.DataFrame]:
    """Class -> its requests, one row per image in image order (write_requests' table)."""
    table = pd.read_csv(path, sep="\t", dtype={"prompt": str, "requested_sex": str, "group": str})
    return {
        str(group): part.drop(columns="group").reset_index(drop=True)
        for group, part in table.groupby("group", sort=False)
    }


def baseline_condition(conditions: list[str], templated: list[str], baseline: str | None) -> str:
    """The class-only condition whose images, with the requests shuffled, show what not following
    looks like: ``baseline`` if given, else the first condition with fixed prompts."""
    fixed = [c for c in conditions if c not in templated]
    if baseline is None:
        if not fixed:
            raise ValueError("instructions: a baseline condition with fixed prompts is needed")
        return fixed[0]
    if baseline not in fixed:
        raise ValueError(
            f"config instructions.baseline {baseline!r}: not a condition with fixed prompts "
            f"(those are: {fixed})"
        )
    return baseline
