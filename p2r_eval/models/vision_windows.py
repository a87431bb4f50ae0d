"""Qwen2.5-VL's windowed vision attention in one attention call per window size.

Qwen2.5-VL's vision tower attends within windows (8x8 patches in 28 of the 7B's 32 blocks)
and, in its full-attention blocks, within each frame pair. With FlashAttention-2 transformers
hands all windows to one variable-length call; with PyTorch's SDPA (what p2r uses where
FlashAttention-2 is not installed, and on every CPU) it splits the sequence and makes one
attention call per window: for a 32-frame 640x360 video at 200,704 pixels a frame, 288 windows
in each of 28 blocks, about 8,000 calls per video, each a few small kernels launched from
Python. On a GPU that launching, not the arithmetic, sets the vision tower's time, and
batching videos does not amortise it (the calls grow with the number of windows).

Here the windows of equal length (nearly all of them are full 64-patch windows; the rest are
the edges' few sizes) are gathered into one batch and attended in one SDPA call per length,
then scattered back into place. Each window still attends to itself alone, with the same
scale and no mask: the same computation, batched (tests/models/test_vision_windows.py checks
the vision tower's output against transformers' own loop).

The hf backend and the trainers (SFT, PA-GRPO's policy and reference) call
:func:`group_window_attention` on the models they load; gradients are transformers' own too.
Only the exact class ``Qwen2_5_VLVisionAttention`` with the ``sdpa`` implementation is
changed; FlashAttention-2 and eager attention, and every other model, run as transformers
wrote them.
"""

from __future__ import annotations

import sys
from types import MethodType
from typing import Any

import torch
from torch.nn import functional

GROUPED_IMPLEMENTATIONS = ("sdpa",)
"""The attention implementations whose per-window loop is replaced by grouped calls."""


def window_groups(cu_seqlens: torch.Tensor) -> dict[int, list[int]]:
    """The start of every non-empty window, by window length, from cumulative boundaries."""
    bounds = cu_seqlens.tolist()
    groups: dict[int, list[int]] = {}
    for start, end in zip(bounds, bounds[1:], strict=False):
        if end > start:
            groups.setdefault(end - start, []).append(start)
    return groups


def windowed_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       cu_seqlens: torch.Tensor, scale: float) -> torch.Tensor:
    """Attention of (length, heads, head_dim) ``query``, ``key``, ``value`` within each window
    that ``cu_seqlens`` bounds, one SDPA call per window length; (length, heads, head_dim)."""
    output = torch.empty_like(query)
    for length, starts in window_groups(cu_seqlens).items():
        first = torch.tensor(starts, device=query.device)
        rows = (first[:, None] + torch.arange(length, device=query.device)).flatten()
        attended = functional.scaled_dot_product_attention(
            gathered_windows(query, rows, length), gathered_windows(key, rows, length),
            gathered_windows(value, rows, length), scale=scale)
        output[rows] = attended.transpose(1, 2).flatten(0, 1)
    return output


def gathered_windows(states: torch.Tensor, rows: torch.Tensor, length: int) -> torch.Tensor:
    """The (length, heads, head_dim) ``states`` at ``rows`` (whole windows of ``length``, one
    after another) as (windows, heads, length, head_dim): a copy of the rows, viewed."""
    return states[rows].unflatten(0, (-1, length)).transpose(1, 2)


def grouped_attention_forward(self: Any, hidden_states: torch.Tensor,
                              cu_seqlens: torch.Tensor,
                              position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
                              max_seqlen: int | None = None, **_: Any) -> torch.Tensor:
    """``Qwen2_5_VLVisionAttention.forward`` with the windows attended by
    :func:`windowed_attention`: the module's own projections and rotary embedding."""
    if position_embeddings is None:
        raise ValueError("Qwen2.5-VL's vision attention needs its rotary position embeddings")
    rotary = sys.modules[type(self).__module__].apply_rotary_pos_emb_vision
    length = hidden_states.shape[0]
    query, key, value = (self.qkv(hidden_states).reshape(length, 3, self.num_heads, -1)
                         .permute(1, 0, 2, 3).unbind(0))
    cos, sin = position_embeddings
    query, key = rotary(query, key, cos, sin)
    attended = windowed_attention(query, key, value, cu_seqlens, self.scaling)
    return self.proj(attended.reshape(length, -1))


def group_window_attention(model: torch.nn.Module) -> int:
    """Give every ``Qwen2_5_VLVisionAttention`` of ``model`` that runs on SDPA the grouped
    forward; the number of attention modules changed (0 for any other model)."""
    try:
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLVisionAttention
    except ImportError:
        return 0
    changed = 0
    for module in model.modules():
        if (type(module) is Qwen2_5_VLVisionAttention
                and module.config._attn_implementation in GROUPED_IMPLEMENTATIONS):
            module.forward = MethodType(grouped_attention_forward, module)  # type: ignore[method-assign]
            changed += 1
    return changed


def restore_window_attention(model: torch.nn.Module) -> int:
    """Give back transformers' own forward (one call per window) to every attention module of
    ``model`` that :func:`group_window_attention` changed; how many."""
    grouped = [module for module in model.modules()
               if getattr(module.forward, "__func__", None) is grouped_attention_forward]
    for module in grouped:
        del module.forward  # the instance's bound method: the class's forward shows through
    return len(grouped)


def grouped_attention_modules(model: torch.nn.Module) -> int:
    """How many of ``model``'s attention modules run :func:`grouped_attention_forward`."""
    return sum(getattr(module.forward, "__func__", None) is grouped_attention_forward
               for module in model.modules())
