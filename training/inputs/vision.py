"""Visual inputs for every forward of a GRPO step, with the vision encoder run once per prompt.

GRPO repeats each prompt ``num_generations`` times. Feeding every row its own copy of the
pixels would run the vision encoder once per *completion*. Instead the rows of a prompt share
one :class:`p2r_train.inputs.collate.VisualInput`: :func:`visual_forward_kwargs` encodes each
distinct
visual once and hands the model its features through ``mm_encoder_outputs`` (transformers'
precomputed-encoder input), one entry per row, all rows of a prompt pointing at the same
tensor (so gradients from every completion flow back into one encoder pass).

When the vision tower is frozen the features are computed once per rollout and cached on the
VisualInput, so generation, the old/reference log-prob passes and the training forwards all
reuse them: one encoder pass per prompt per generation batch.

Models whose forward has no ``mm_encoder_outputs`` (older transformers) get the pixels of every
row instead: correct, only slower.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from p2r_train.inputs.collate import VisualInput

# Config attributes of multimodal placeholder ids the policy must never sample.
PLACEHOLDER_ATTRIBUTES = (
    "image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id",
)


def placeholder_token_ids(config: Any) -> list[int]:
    """The image/video placeholder and vision start/end ids the config declares."""
    ids = {getattr(config, name, None) for name in PLACEHOLDER_ATTRIBUTES}
    return sorted(i for i in ids if isinstance(i, int))


def accepts_encoder_outputs(model: torch.nn.Module) -> bool:
    return "mm_encoder_outputs" in inspect.signature(type(model).forward).parameters


def vision_tower(model: torch.nn.Module) -> torch.nn.Module:
    """The vision encoder module of a Qwen2-VL-family model (``model.model.visual``)."""
    base = getattr(model, "model", model)
    tower = getattr(base, "visual", None)
    if tower is None:
        raise ValueError(f"{type(model).__name__} has no 'visual' vision tower to freeze")
    return tower


def freeze_vision_tower(model: torch.nn.Module) -> None:
    for parameter in vision_tower(model).parameters():
        parameter.requires_grad_(False)


def is_vision_frozen(model: torch.nn.Module) -> bool:
    base = getattr(model, "model", model)
    tower = getattr(base, "visual", None)
    return tower is not None and not any(p.requires_grad for p in tower.parameters())


def distinct(visuals: Sequence[VisualInput]) -> list[VisualInput]:
    """The distinct visual objects of ``visuals``, in first-appearance order."""
    seen: dict[int, VisualInput] = {}
    for visual in visuals:
        seen.setdefault(id(visual), visual)
    return list(seen.values())


def encode(model: torch.nn.Module, visuals: Sequence[VisualInput]) -> dict[int, torch.Tensor]:
    """Encoder features of each visual (keyed by object id): cached ones reused, the others
    computed in one encoder call per modality."""
    features = {id(v): v.features for v in visuals if v.features is not None}
    for kind, method in (("video", "get_video_features"), ("image", "get_image_features")):
        todo = [v for v in visuals if v.kind == kind and v.features is None]
        if not todo:
            continue
        pixels = torch.cat([v.pixel_values for v in todo])
        grids = torch.cat([v.grid_thw for v in todo])
        outputs = getattr(model, method)(pixels, grids, return_dict=True).pooler_output
        features.update({id(v): output for v, output in zip(todo, outputs, strict=True)})
    return features


def cache_features(model: torch.nn.Module, visuals: Sequence[VisualInput]) -> None:
    """Encode once, without gradients, and keep the features on the visuals."""
    with torch.no_grad():
        features = encode(model, visuals)
    for visual in visuals:
        visual.features = features[id(visual)]


def token_types(input_ids: torch.Tensor, config: Any) -> torch.Tensor:
    """``mm_token_type_ids``: 1 on image placeholders, 2 on video placeholders, else 0."""
    types = torch.zeros_like(input_ids)
    types[input_ids == config.image_token_id] = 1
    types[input_ids == config.video_token_id] = 2
    return types


def _rows_of(kind: str, visuals: Sequence[VisualInput]) -> list[VisualInput]:
    return [v for v in visuals if v.kind == kind]


def visual_forward_kwargs(model: torch.nn.Module, visuals: Sequence[VisualInput],
                          input_ids: torch.Tensor) -> dict[str, Any]:
    """Keyword arguments that give the rows of ``input_ids`` their images and videos.

    ``model`` is the unwrapped model; ``visuals[i]`` belongs to row ``i`` (rows may share).
    """
    videos, images = _rows_of("video", visuals), _rows_of("image", visuals)
    kwargs: dict[str, Any] = {"mm_token_type_ids": token_types(input_ids, model.config)}
    if videos:
        kwargs["video_grid_thw"] = torch.cat([v.grid_thw for v in videos])
        kwargs["second_per_grid_ts"] = torch.tensor(
            [v.second_per_grid_t for v in videos], device=input_ids.device
        )
    if images:
        kwargs["image_grid_thw"] = torch.cat([v.grid_thw for v in images])
    if not accepts_encoder_outputs(model):
        if videos:
            kwargs["pixel_values_videos"] = torch.cat([v.pixel_values for v in videos])
        if images:
            kwargs["pixel_values"] = torch.cat([v.pixel_values for v in images])
        return kwargs
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    features = encode(model, distinct(visuals))
    encoder_outputs = {}
    for kind, rows in (("video", videos), ("image", images)):
        if rows:
            pooled = tuple(features[id(v)] for v in rows)
            # annotated as one tensor; the Qwen-VL models keep one per video there (torch.split)
            encoder_outputs[kind] = BaseModelOutputWithPooling(
                pooler_output=pooled)  # type: ignore[arg-type]
    kwargs["mm_encoder_outputs"] = encoder_outputs
    return kwargs
