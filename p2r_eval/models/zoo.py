"""The paper's models as data (``zoo.yaml``): hub id, architecture, prompt style, protocol
and input policy of each row of the main table, and the command that evaluates it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from p2r_eval.core.prompts import STYLE_TEMPLATES
from p2r_eval.media.input_policies import INPUT_POLICY_NAMES, UNIFORM

ZOO_FILE = Path(__file__).with_name("zoo.yaml")
ZOO_BACKENDS = ("hf", "lmms-eval")
ZOO_PROTOCOLS = ("video-r1", "official")


class ZooError(ValueError):
    """zoo.yaml is malformed, or a model name is not in it (the message says which)."""


@dataclass(frozen=True)
class ZooModel:
    """One row of the paper's table and the settings that evaluate it (see zoo.yaml)."""

    name: str
    hub_id: str | None
    architecture: str
    backend: str
    prompt: str
    protocol: str
    input_policy: str
    policy_reason: str
    code: str
    prompt_reason: str
    frames: int | None = None
    max_pixels: int | None = None
    notes: str = ""


def parse_model(record: dict[str, Any], where: str) -> ZooModel:
    """A :class:`ZooModel` from one entry of zoo.yaml, every field checked."""
    names = {f.name for f in fields(ZooModel)}
    unknown = sorted(set(record) - names)
    if unknown:
        raise ZooError(f"{where}: unknown fields {', '.join(unknown)}")
    try:
        model = ZooModel(**record)
    except TypeError as error:
        raise ZooError(f"{where}: {error}") from error
    problems = model_problems(model)
    if problems:
        raise ZooError(f"{where} ({model.name}): " + "; ".join(problems))
    return model


def model_problems(model: ZooModel) -> list[str]:
    """What is wrong with an entry's values (empty when nothing is)."""
    problems = []
    if model.prompt not in STYLE_TEMPLATES:
        problems.append(f"prompt {model.prompt!r} is not one of {', '.join(STYLE_TEMPLATES)}")
    if model.backend not in ZOO_BACKENDS:
        problems.append(f"backend {model.backend!r} is not one of {', '.join(ZOO_BACKENDS)}")
    if model.protocol not in ZOO_PROTOCOLS:
        problems.append(f"protocol {model.protocol!r} is not one of {', '.join(ZOO_PROTOCOLS)}")
    if model.input_policy not in INPUT_POLICY_NAMES:
        problems.append(f"input_policy {model.input_policy!r} is not one of "
                        f"{', '.join(INPUT_POLICY_NAMES)}")
    elif model.input_policy == UNIFORM and not is_positive_int(model.frames):
        problems.append(f"frames must be a positive integer, got {model.frames!r}")
    elif model.input_policy != UNIFORM and (model.frames, model.max_pixels) != (None, None):
        problems.append(f"frames and max_pixels belong to the uniform policy, not to "
                        f"{model.input_policy}")
    if model.max_pixels is not None and not is_positive_int(model.max_pixels):
        problems.append(f"max_pixels must be null or a positive integer, got {model.max_pixels!r}")
    return problems


def is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def load_zoo(path: Path = ZOO_FILE) -> tuple[ZooModel, ...]:
    """Every model of ``path`` (default: the packaged zoo.yaml), in table order."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    records = data.get("models") if isinstance(data, dict) else None
    if not isinstance(records, list) or not records:
        raise ZooError(f"{path}: expected a non-empty 'models' list")
    models = tuple(
        parse_model(record, f"{path}: models[{index}]") for index, record in enumerate(records)
    )
    names = [model.name for model in models]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ZooError(f"{path}: duplicate model names {', '.join(duplicates)}")
    return models


def find_model(name: str, models: tuple[ZooModel, ...] | None = None) -> ZooModel:
    """The model called ``name`` or whose hub id is ``name`` (case-insensitive)."""
    models = models if models is not None else load_zoo()
    wanted = name.casefold()
    for model in models:
        if wanted in (model.name.casefold(), (model.hub_id or "").casefold()):
            return model
    known = ", ".join(model.name for model in models)
    raise ZooError(f"no model {name!r} in the zoo; known: {known}")


def eval_command(model: ZooModel) -> str | None:
    """The ``p2r-eval`` command that evaluates ``model`` with its recommended settings on the
    real benchmarks; None for models p2r-eval does not run itself (see their notes)."""
    if model.backend != "hf":
        return None
    checkpoint = model.hub_id or "CHECKPOINT_DIR"
    parts = [
        f"p2r-eval --model {checkpoint}",
        f"--prompt {model.prompt}",
        f"--protocol {model.protocol}",
        f"--input-policy {model.input_policy}",
    ]
    if model.frames is not None:
        parts.append(f"--frames {model.frames}")
    if model.max_pixels is not None:
        parts.append(f"--max-pixels {model.max_pixels}")
    parts.append("--tasks all --data-root DATA_ROOT")
    return " ".join(parts)


def markdown_cell(value: object) -> str:
    if value is None:
        return "-"
    return str(value).replace("|", "\\|")


def zoo_table(models: tuple[ZooModel, ...] | None = None) -> str:
    """The zoo as a markdown table, one row per model, in table order."""
    models = models if models is not None else load_zoo()
    header = ("Model", "Hub id", "Architecture", "Backend", "Prompt", "Protocol",
              "Input policy")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in models:
        cells = (model.name, model.hub_id and f"`{model.hub_id}`", model.architecture,
                 model.backend, model.prompt, model.protocol, policy_label(model))
        lines.append("| " + " | ".join(markdown_cell(cell) for cell in cells) + " |")
    return "\n".join(lines)


def policy_label(model: ZooModel) -> str:
    """The input policy, with its frame count where the policy is uniform."""
    if model.input_policy != UNIFORM:
        return model.input_policy
    return f"uniform, {model.frames} frames"


def model_details(model: ZooModel) -> str:
    """Everything the zoo says about one model, with its command, as plain text."""
    command = eval_command(model)
    lines = [
        model.name,
        f"  hub id:       {model.hub_id or 'none public'}",
        f"  architecture: {model.architecture}",
        f"  backend:      {model.backend}",
        f"  prompt:       {model.prompt}",
        f"  why:          {model.prompt_reason}",
        f"  protocol:     {model.protocol}",
        f"  input policy: {policy_label(model)}",
        f"  why:          {model.policy_reason}",
        f"  code:         {model.code}",
    ]
    if model.notes:
        lines.append(f"  notes:        {model.notes}")
    if command:
        lines.append(f"  command:      {command}")
    return "\n".join(lines)
