"""Tiny random checkpoints of every architecture the paper's table needs, built offline.

The demo model (:mod:`p2r_eval.models.demo`) is the Qwen2.5-VL one; this module adds Qwen2-VL
and LLaVA-OneVision (SigLIP vision tower + Qwen2 text model, transformers'
``LlavaOnevisionForConditionalGeneration``) with the same tokenizer recipe, so that the hf
and vllm backends can be shown to run each architecture through one model-agnostic path,
on a CPU, in seconds. Weights are random (seeded): outputs are gibberish.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from p2r_eval.models.demo import (
    QWEN2_VL_CHAT_TEMPLATE,
    TEXT_CONFIG,
    build_demo_generation_config,
    build_demo_tokenizer,
    make_demo_model,
    text_config,
    token_id,
)

# llava-hf's LLaVA-OneVision chat template, reduced: each turn is <|im_start|>role, its
# images, then its videos (one placeholder each), then its text, then <|im_end|>.
LLAVA_ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }} "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "<image>{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "<video>{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "\n{{ content['text'] }}{% endfor %}"
    "{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# LLaVA-OneVision sizes: 28-pixel frames are 2x2 SigLIP patches of 14 pixels.
LLAVA_SIDE = 28
QWEN2_VL_VISION_CONFIG = {
    "depth": 2,
    "embed_dim": 32,
    "hidden_size": TEXT_CONFIG["hidden_size"],
    "mlp_ratio": 2,
    "num_heads": 2,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
}
SIGLIP_VISION_CONFIG: dict[str, Any] = {
    "model_type": "siglip_vision_model",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": LLAVA_SIDE,
    "patch_size": 14,
    "vision_use_head": False,
}


def save_checkpoint(model: Any, processor: Any, directory: Path) -> Path:
    """Write a random model with the demo's generation config, and its processor."""
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"{directory} is not empty; a tiny checkpoint needs an empty folder")
    model.generation_config = build_demo_generation_config(processor.tokenizer)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def make_tiny_qwen2_vl(directory: Path, *, seed: int = 0) -> Path:
    """A tiny random Qwen2-VL (Qwen2-VL's processor, the demo's tokenizer and template)."""
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = build_demo_tokenizer()
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 16384),
        video_processor=Qwen2VLVideoProcessor(cap_pixels_per_frame=True),
        tokenizer=tokenizer,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    config = Qwen2VLConfig(
        text_config=text_config(tokenizer, TEXT_CONFIG),
        vision_config=dict(QWEN2_VL_VISION_CONFIG),
        image_token_id=token_id(tokenizer, "<|image_pad|>"),
        video_token_id=token_id(tokenizer, "<|video_pad|>"),
        vision_start_token_id=token_id(tokenizer, "<|vision_start|>"),
        vision_end_token_id=token_id(tokenizer, "<|vision_end|>"),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2VLForConditionalGeneration(config)
        # transformers types to() as functools.wraps(Module.to): a model as first argument
        model = model.to(torch.float32).eval()  # type: ignore[arg-type]
    return save_checkpoint(model, processor, Path(directory))


def make_tiny_llava_onevision(directory: Path, *, seed: int = 0) -> Path:
    """A tiny random LLaVA-OneVision: SigLIP vision tower, Qwen2 text model, the real
    image (any-resolution tiles) and video processors at 28-pixel tiles and frames."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    tokenizer = build_demo_tokenizer()
    tokenizer.add_tokens(["<image>", "<video>"], special_tokens=True)
    tokenizer.chat_template = LLAVA_ONEVISION_CHAT_TEMPLATE
    side = LLAVA_SIDE
    pinpoints = [[side, side], [side, 2 * side], [2 * side, side], [2 * side, 2 * side]]
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(
            size={"height": side, "width": side}, image_grid_pinpoints=pinpoints
        ),
        video_processor=LlavaOnevisionVideoProcessor(size={"height": side, "width": side}),
        tokenizer=tokenizer,
        chat_template=LLAVA_ONEVISION_CHAT_TEMPLATE,
        num_image_tokens=(side // SIGLIP_VISION_CONFIG["patch_size"]) ** 2,
        vision_feature_select_strategy="full",
    )
    # A plain Qwen2 text model: the demo's sizes without Qwen2.5-VL's multimodal rotary split.
    sizes = {key: value for key, value in TEXT_CONFIG.items() if key != "rope_parameters"}
    config = LlavaOnevisionConfig(
        vision_config=dict(SIGLIP_VISION_CONFIG),
        text_config=text_config(tokenizer, {**sizes, "model_type": "qwen2"}),
        image_token_index=token_id(tokenizer, "<image>"),
        video_token_index=token_id(tokenizer, "<video>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaOnevisionForConditionalGeneration(config)
        # transformers types to() as functools.wraps(Module.to): a model as first argument
        model = model.to(torch.float32).eval()  # type: ignore[arg-type]
    return save_checkpoint(model, processor, Path(directory))


TINY_BUILDERS: dict[str, Callable[..., Path]] = {
    "qwen2_5_vl": make_demo_model,
    "qwen2_vl": make_tiny_qwen2_vl,
    "llava_onevision": make_tiny_llava_onevision,
}
"""transformers model type → builder of a tiny random checkpoint of it into a folder."""
