"""Settings built from command-line options shared by p2r-eval and p2r-train: one reading of
``--temperature/--top-p/--max-new-tokens/--seed`` and of the frame options everywhere."""

from __future__ import annotations

import argparse

from p2r_eval.models.base import DecodingSettings
from p2r_eval.video import FramePolicy


def decoding_from_args(args: argparse.Namespace) -> DecodingSettings:
    """Greedy when ``--temperature`` is 0 (top-p then unused), sampling otherwise."""
    sampling = args.temperature > 0
    return DecodingSettings(
        max_new_tokens=args.max_new_tokens,
        do_sample=sampling,
        temperature=args.temperature if sampling else 1.0,
        top_p=args.top_p if sampling else 1.0,
        seed=args.seed,
    )


def frame_policy_from_args(args: argparse.Namespace) -> FramePolicy:
    """``--frames``, or ``--fps`` within ``--min-frames/--max-frames``; ``--max-pixels``."""
    return FramePolicy(num_frames=args.frames, fps=args.fps, min_frames=args.min_frames,
                       max_frames=args.max_frames, max_pixels=args.max_pixels)
