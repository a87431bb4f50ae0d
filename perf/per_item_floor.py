"""The least CPU work any pipeline with p2r-eval's exact inputs spends on one video item.

Usage::

    python perf/per_item_floor.py                     # the 2 minute clip of the benchmarks
    python perf/per_item_floor.py --clip 15s --json floor.json

``perf/bench_vs_lmms_native.py`` runs this and divides lmms-eval's measured time per item by
the floor: the most any pipeline giving these exact inputs could be faster per item on the
machine, however little else it did. Two costs cannot be avoided, and each is measured alone
(CPU seconds of this process, best of ``--repeats``):

- decoding: the H.264 decoder's work for the item's frames (``--frames`` uniform frames, the
  rule p2r-eval and qwen-vl-utils share): every frame from the keyframe at or before a wanted
  frame up to it (frames between two wanted frames decoded once, a seek wherever that decodes
  fewer), with PyAV, one thread, no conversion to RGB and no copy out of the decoder. Frames
  are predicted from the ones before them back to a keyframe, so a pipeline decoding fewer
  frames does not get these frames exactly.
- generating: transformers' ``generate`` for the model (what both harnesses call; greedy,
  ``--max-new-tokens``, p2r-eval's own arguments) on the item's processor outputs, made
  beforehand, with one torch thread.

Everything else (conversion to RGB, resizing, the processor, the prompt, writing results)
counts as nothing. Over a run of many items, at best every core is busy with this work all the
time (one item's frames decoding while another's answer is generated, one video's runs from
different keyframes on different cores), so an item costs at least ``(decode + generate) /
cores`` seconds of wall time.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import torch
from bench_sampler import Clip, ensure_clip

from p2r_eval.core.items import Item
from p2r_eval.eval.loop import EvalSettings, request_builder
from p2r_eval.media.video import FramePolicy, uniform_indices
from p2r_eval.models import DecodingSettings, load_backend
from p2r_eval.models.hf import HFBackend

CLIPS = {"2min": Clip("2min", 120, 854, 480), "15s": Clip("15s", 15, 854, 480)}
"""The clips of ``perf/bench_vs_lmms_native.py`` (the same files in the same work folder)."""


@dataclass(frozen=True)
class Floor:
    """One item's unavoidable CPU seconds, and the wall time they take at best."""

    clip: str
    frames: int
    frames_decoded: int
    decode_cpu_s: float
    generate_cpu_s: float
    new_tokens: int
    cores: int

    @property
    def wall_s(self) -> float:
        """Both costs spread perfectly over the cores, item after item."""
        return (self.decode_cpu_s + self.generate_cpu_s) / self.cores


@dataclass(frozen=True)
class FrameIndex:
    """The video stream's frames in display order: their pts and which are keyframes."""

    pts: tuple[int, ...]
    keyframes: tuple[int, ...]

    @classmethod
    def of(cls, clip: Path) -> FrameIndex:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            packets = sorted((packet.pts, packet.is_keyframe)
                             for packet in container.demux(stream)
                             if packet.size and packet.pts is not None)
        return cls(tuple(pts for pts, _ in packets),
                   tuple(rank for rank, (_, key) in enumerate(packets) if key))

    def keyframe_before(self, rank: int) -> int:
        return self.keyframes[bisect.bisect_right(self.keyframes, rank) - 1]


def decode_wanted(clip: Path, index: FrameIndex, wanted: Sequence[int]) -> int:
    """Decode display frames ``wanted`` (sorted) with the fewest frames decoded; returns how
    many frames the decoder produced."""
    decoded = 0
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        rank_of = {pts: rank for rank, pts in enumerate(index.pts)}
        position = -1
        frames = container.decode(stream)
        for target in wanted:
            keyframe = index.keyframe_before(target)
            if keyframe > position + 1:
                container.seek(index.pts[keyframe], stream=stream, backward=True)
                frames = container.decode(stream)
            while position < target:
                frame = next(frames)
                if frame.pts is None:
                    raise ValueError(f"{clip}: a frame without a timestamp")
                position = rank_of[frame.pts]
                decoded += 1
    return decoded


def best_cpu_s(work: Callable[[], object], repeats: int) -> float:
    """The least CPU time (this process) ``work`` took over ``repeats`` runs."""
    spent = []
    for _ in range(repeats):
        started = time.process_time()
        work()
        spent.append(time.process_time() - started)
    return min(spent)


def measure(clip_name: str, workdir: Path, model: str, frames: int, max_pixels: int,
            max_new_tokens: int, repeats: int) -> Floor:
    clip = ensure_clip(workdir, CLIPS[clip_name])
    index = FrameIndex.of(clip)
    wanted = sorted(set(uniform_indices(len(index.pts), frames)))
    frames_decoded = decode_wanted(clip, index, wanted)
    decode_s = best_cpu_s(lambda: decode_wanted(clip, index, wanted), repeats)

    settings = EvalSettings(model_spec=model, tasks=("floor",),
                            frame_policy=FramePolicy(num_frames=frames, max_pixels=max_pixels),
                            decoding=DecodingSettings(max_new_tokens=max_new_tokens))
    backend = load_backend(model, decoding=settings.decoding, device="cpu",
                           max_pixels=max_pixels)
    assert isinstance(backend, HFBackend)
    item = Item(task="floor", id="item", question="What moves across the frame?",
                options=("A. A square", "B. A circle", "C. Nothing", "D. The camera"),
                answer="A", answer_type="multiple choice", media=clip)
    request = request_builder(settings, needs_media=True, frame_size=backend.frame_size)(item)
    inputs = backend.processor_outputs([request]).to(backend.model.device,
                                                      dtype=backend.model.dtype)
    torch.set_num_threads(1)
    prompt_length = inputs["input_ids"].shape[1]
    new_tokens = 0

    def generate() -> None:
        nonlocal new_tokens
        with torch.inference_mode():
            sequences = backend.model.generate(**inputs, **backend.generation_kwargs())
        new_tokens = sequences.shape[1] - prompt_length

    generate()  # warm-up
    generate_s = best_cpu_s(generate, repeats)
    return Floor(clip_name, len(wanted), frames_decoded, decode_s, generate_s, new_tokens,
                 len(os.sched_getaffinity(0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", choices=sorted(CLIPS), default="2min")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "p2r-bench-sampler",
                        help="where the clips are made once (shared with the benchmarks)")
    parser.add_argument("--model", default="demo")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--max-pixels", type=int, default=200_704)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    floor = measure(args.clip, args.workdir, args.model, args.frames, args.max_pixels,
                    args.max_new_tokens, args.repeats)
    print(f"{floor.clip} clip, {floor.frames} frames: decoding {floor.frames_decoded} frames "
          f"{floor.decode_cpu_s:.3f} CPU s, generating {floor.new_tokens} tokens "
          f"{floor.generate_cpu_s:.3f} CPU s; at best {floor.wall_s:.3f} s per item on "
          f"{floor.cores} cores")
    if args.json is not None:
        args.json.write_text(json.dumps({**asdict(floor), "wall_s": floor.wall_s}, indent=2))


if __name__ == "__main__":
    main()
