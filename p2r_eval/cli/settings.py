"""Settings built from command-line options shared by p2r-eval and p2r-train: one reading of
``--temperature/--top-p/--max-new-tokens/--seed`` and of the frame options everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from p2r_eval.media.input_policies import UNIFORM, default_input_policy, named_frame_policy
from p2r_eval.media.video import FramePolicy
from p2r_eval.models.base import DecodingSettings


def resolved_path_argument(path: Path, option: str) -> Path:
    """``path`` made absolute with its links resolved; a ``ValueError`` naming ``option`` for
    one that cannot be (a symlink loop)."""
    try:
        return path.resolve()
    except RuntimeError:  # pathlib's report of a symlink loop
        raise ValueError(f"{option} {path}: a symlink loop") from None


def decoding_from_args(args: argparse.Namespace) -> DecodingSettings:
    """Greedy when ``--temperature`` is 0 (no temperature or top-p recorded: none is used),
    sampling otherwise."""
    sampling = args.temperature > 0
    return DecodingSettings(
        max_new_tokens=args.max_new_tokens,
        do_sample=sampling,
        temperature=args.temperature if sampling else None,
        top_p=args.top_p if sampling else None,
        seed=args.seed,
    )


UNIFORM_FRAME_OPTIONS = {"frames": "--frames", "fps": "--fps", "min_frames": "--min-frames",
                         "max_frames": "--max-frames", "max_pixels": "--max-pixels"}


def input_policy_from_args(args: argparse.Namespace) -> FramePolicy:
    """p2r-eval's frame policy: ``--input-policy``, by default the protocol's
    (:func:`p2r_eval.media.input_policies.default_input_policy`) unless a frame option is given,
    which selects ``uniform``. ValueError for frame options given with a named policy."""
    given = [flag for name, flag in UNIFORM_FRAME_OPTIONS.items()
             if getattr(args, name) is not None]
    name = args.input_policy or (UNIFORM if given else default_input_policy(args.protocol))
    if name != UNIFORM:
        if given:
            raise ValueError(f"{', '.join(given)} set the uniform input policy; --input-policy "
                             f"{name} fixes its own frames and sizes (docs/models.md)")
        return named_frame_policy(name)
    defaults = FramePolicy()
    return FramePolicy(
        num_frames=defaults.num_frames if args.frames is None else args.frames,
        fps=args.fps,
        min_frames=defaults.min_frames if args.min_frames is None else args.min_frames,
        max_frames=defaults.max_frames if args.max_frames is None else args.max_frames,
        max_pixels=defaults.max_pixels if args.max_pixels is None else args.max_pixels,
    )


def frame_policy_from_args(args: argparse.Namespace) -> FramePolicy:
    """``--frames``, or ``--fps`` within ``--min-frames/--max-frames``; ``--max-pixels``."""
    return FramePolicy(num_frames=args.frames, fps=args.fps, min_frames=args.min_frames,
                       max_frames=args.max_frames, max_pixels=args.max_pixels)
