"""Qwen2.5-VL's windowed vision attention, grouped by window length, gives transformers' own
per-window loop's output bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from p2r_eval.core.request import Request
from p2r_eval.models.base import DecodingSettings
from p2r_eval.models.hf import HFBackend
from p2r_eval.models.vision_windows import (
    group_window_attention,
    grouped_attention_modules,
    restore_window_attention,
    window_groups,
)

PATCH_VALUES = 3 * 2 * 14 * 14
"""Values per patch row: 3 channels, 2 frames (temporal patch), 14x14 pixels."""


def vision_tower(attn_implementation: str, dtype: torch.dtype) -> torch.nn.Module:
    """A small Qwen2.5-VL vision tower with the 7B's window layout: 112-pixel windows in
    every block but two full-attention ones."""
    # imported here: transformers' Qwen2.5-VL imports torchvision, kept out of collection
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VisionTransformerPretrainedModel,
    )

    torch.manual_seed(0)
    config = Qwen2_5_VLVisionConfig(
        depth=4, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=64,
        fullatt_block_indexes=[1, 3], window_size=112, patch_size=14, spatial_merge_size=2,
        temporal_patch_size=2)
    tower = Qwen2_5_VisionTransformerPretrainedModel._from_config(
        config, attn_implementation=attn_implementation)
    return tower.eval().to(dtype)


def tower_output(tower: torch.nn.Module, pixels: torch.Tensor, grid: torch.Tensor
                 ) -> torch.Tensor:
    with torch.inference_mode():
        output = tower(pixels, grid_thw=grid)
    return output if isinstance(output, torch.Tensor) else output[0]


# a 640x360 video at 200,704 pixels a frame (8 frames), a smaller video whose edge windows
# have other sizes, and an image (one frame)
GRIDS = torch.tensor([[4, 24, 42], [2, 10, 14], [1, 6, 18]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_grouped_windows_give_the_per_window_loops_output(dtype: torch.dtype) -> None:
    tower = vision_tower("sdpa", dtype)
    pixels = torch.randn(int(GRIDS.prod(-1).sum()), PATCH_VALUES, dtype=dtype)
    own = tower_output(tower, pixels, GRIDS)
    assert group_window_attention(tower) == 4
    assert grouped_attention_modules(tower) == 4
    grouped = tower_output(tower, pixels, GRIDS)
    assert torch.equal(grouped, own)


def output_and_gradients(tower: torch.nn.Module, pixels: torch.Tensor
                         ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    tower.zero_grad()
    output = tower(pixels, grid_thw=GRIDS)
    output = output if isinstance(output, torch.Tensor) else output[0]
    (output.float() ** 2).sum().backward()
    return output.detach(), [p.grad.clone() for p in tower.parameters() if p.grad is not None]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_grouped_windows_give_the_same_gradients(dtype: torch.dtype) -> None:
    """Training (SFT, PA-GRPO) runs the grouped windows too: the same backward pass."""
    tower = vision_tower("sdpa", dtype).train()
    pixels = torch.randn(int(GRIDS.prod(-1).sum()), PATCH_VALUES, dtype=dtype)
    own_output, own_gradients = output_and_gradients(tower, pixels)
    group_window_attention(tower)
    output, gradients = output_and_gradients(tower, pixels)
    assert torch.equal(output, own_output)
    assert len(gradients) == len(own_gradients) > 0
    assert all(torch.equal(ours, theirs) for ours, theirs in zip(gradients, own_gradients,
                                                                 strict=True))


def test_the_windows_matter_in_this_check() -> None:
    """Attending over each whole frame pair instead of its windows changes the output: the
    comparison above would catch windows grouped wrongly."""
    tower = vision_tower("sdpa", torch.float32)
    pixels = torch.randn(int(GRIDS.prod(-1).sum()), PATCH_VALUES)
    own = tower_output(tower, pixels, GRIDS)
    tower.fullatt_block_indexes = list(range(4))
    assert not torch.allclose(tower_output(tower, pixels, GRIDS), own)


def test_windows_are_grouped_by_length_in_order() -> None:
    bounds = torch.tensor([0, 64, 128, 144, 144, 208], dtype=torch.int32)
    assert window_groups(bounds) == {64: [0, 64, 144], 16: [128]}


def test_eager_attention_is_left_as_transformers_wrote_it() -> None:
    tower = vision_tower("eager", torch.float32)
    assert group_window_attention(tower) == 0
    assert grouped_attention_modules(tower) == 0


def test_the_hf_backend_groups_the_demo_models_windows_with_the_same_answers(
        model_dir: Path) -> None:
    backend = HFBackend(model_dir, decoding=DecodingSettings(max_new_tokens=8),
                        max_pixels=80_000)
    depth = backend.model.config.vision_config.depth
    assert grouped_attention_modules(backend.model) == depth
    frames = np.random.default_rng(0).integers(0, 256, (8, 360, 640, 3), dtype=np.uint8)
    request = Request("t", "v", "What happens?", frames=frames, fps=2.0)
    grouped = backend.generate_counted([request])
    assert restore_window_attention(backend.model) == depth
    assert grouped_attention_modules(backend.model) == 0
    assert backend.generate_counted([request]) == grouped
