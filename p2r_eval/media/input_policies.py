"""Named input policies: which frames a model sees and at what size, each reproducing one
reference pipeline exactly (tests/media/test_input_policies.py checks each against the reference's
own code).

- ``video-r1``: Video-R1's evaluation (its vendored qwen-vl-utils ``vision_process`` at the
  evaluation settings its README gives): 2 fps, 4 to 32 frames floored to an even number,
  frames resized to between 128*28*28 and 256*28*28 pixels. The paper's protocol, and the
  default under ``--protocol video-r1``.
- ``videorft``: VideoRFT's evaluation (the same code, set to exactly 32 frames and 256*28*28
  pixels for both bounds; qwen-vl-utils' rule lets a frame reach 1.05 times the lower bound).
- ``lmms-eval``: lmms-eval 0.7.3's ``qwen2_5_vl`` model with its defaults: 32 frames, fewer in
  a shorter video (floored to an even number), frames resized to between 256*28*28 and
  768*28*28 pixels.
- ``uniform``: ``--frames N`` uniform frames, or ``--fps`` between ``--min-frames`` and
  ``--max-frames``; the model's processor resizes to at most ``--max-pixels``.

The named policies resize each frame right after decoding, as qwen-vl-utils does, so the
processor receives frames already at their final size.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2r_eval.media.video import FramePolicy

TOKEN_PIXELS = 28 * 28
"""Pixels per visual token of Qwen2-VL / Qwen2.5-VL (a 28x28 merged patch)."""
UNIFORM = "uniform"


@dataclass(frozen=True)
class InputPolicy:
    """A named input policy: the frame policy that realises it and what it reproduces."""

    name: str
    reproduces: str
    frames: str
    frame_policy: FramePolicy


def _qwen_vl_utils_policy(name: str, **settings: float | int | None) -> FramePolicy:
    return FramePolicy(input_policy=name, count_rule="qwen-vl-utils", resize="qwen-vl-utils",
                       **settings)  # type: ignore[arg-type]


NAMED_POLICIES: dict[str, InputPolicy] = {
    policy.name: policy
    for policy in (
        InputPolicy(
            "video-r1",
            "Video-R1's evaluation script (its qwen-vl-utils at its README's eval settings)",
            "2 fps, 4-32 frames (even), 128-256 x 28x28 pixels, resized with bicubic",
            _qwen_vl_utils_policy("video-r1", fps=2.0, min_frames=4, max_frames=32,
                                  min_pixels=128 * TOKEN_PIXELS, max_pixels=256 * TOKEN_PIXELS),
        ),
        InputPolicy(
            "videorft",
            "VideoRFT's evaluation script (its qwen-vl-utils at its README's eval settings)",
            "32 frames (fewer, even, in shorter videos), 256 x 28x28 pixels, bicubic",
            _qwen_vl_utils_policy("videorft", fps=2.0, min_frames=32, max_frames=32,
                                  min_pixels=256 * TOKEN_PIXELS, max_pixels=256 * TOKEN_PIXELS),
        ),
        InputPolicy(
            "lmms-eval",
            "lmms-eval 0.7.3's qwen2_5_vl model with its default arguments",
            "32 frames (fewer, even, in shorter videos), 256-768 x 28x28 pixels, bicubic",
            _qwen_vl_utils_policy("lmms-eval", num_frames=32, min_pixels=256 * TOKEN_PIXELS,
                                  max_pixels=768 * TOKEN_PIXELS),
        ),
    )
}
INPUT_POLICY_NAMES = (*NAMED_POLICIES, UNIFORM)
PAPER_INPUT_POLICY = "video-r1"
"""The policy of the paper's tables (it evaluated with Video-R1's script)."""


def default_input_policy(protocol: str) -> str:
    """``video-r1`` under the paper's protocol; ``uniform`` (``--frames``) under ``official``."""
    return PAPER_INPUT_POLICY if protocol == "video-r1" else UNIFORM


def named_frame_policy(name: str) -> FramePolicy:
    """The frame policy of a named (non-uniform) input policy; ValueError naming the choices."""
    if name not in NAMED_POLICIES:
        raise ValueError(f"unknown input policy {name!r}; choose one of "
                         f"{', '.join(INPUT_POLICY_NAMES)}")
    return NAMED_POLICIES[name].frame_policy


def recorded_input_policy(frame_policy: dict[str, object]) -> str:
    """The input policy of a recorded frame policy (results.json ``frame_policy``); runs
    recorded before policies had names were uniform."""
    return str(frame_policy.get("input_policy") or UNIFORM)


def input_policy_label(frame_policy: dict[str, object]) -> str:
    """A few words naming a recorded frame policy: ``video-r1 inputs``, ``16 frames``."""
    name = recorded_input_policy(frame_policy)
    if name in NAMED_POLICIES:
        return f"{name} inputs"
    if frame_policy.get("fps"):
        return f"{frame_policy['fps']} fps"
    return f"{frame_policy.get('num_frames', '?')} frames"


def describe_input_policy(frame_policy: dict[str, object]) -> str:
    """A recorded frame policy in full, e.g. ``video-r1 (2 fps, 4-32 frames (even), ...)``
    or ``uniform, 16 frames, at most 200704 pixels``."""
    name = recorded_input_policy(frame_policy)
    if name in NAMED_POLICIES:
        return f"{name} ({NAMED_POLICIES[name].frames})"
    pixels = frame_policy.get("max_pixels")
    cap = f", at most {pixels} pixels" if pixels else ""
    return f"uniform, {input_policy_label(frame_policy)}{cap}"
