"""Qwen2.5-VL's vision tower: p2r's grouped window attention against transformers' own loop.

Usage::

    python perf/bench_vision_windows.py --device cuda            # the 7B's tower (GPU)
    python perf/bench_vision_windows.py --device cpu --narrow    # its layout, 64 wide (CPU)

With SDPA, transformers attends each 8x8-patch window in a call of its own (about 8,000 calls
per 32-frame video at the 7B's depth); :mod:`p2r_eval.models.vision_windows` makes one call
per window length. Both run the same random-weight tower (the 7B's vision config from
``perf/random_checkpoint.py``: 32 blocks, width 1280, windows of 112 pixels, full attention
in blocks 7/15/23/31; ``--narrow``: the same depth and windows at width 64, which on a CPU
leaves mostly the per-call cost) on ``--videos`` videos of ``--frames`` frames at 336x588
(640x360 frames at 200,704 pixels, p2r's default), in one forward as a batch of the hf
backend would. The two take turns ``--repeats`` times after a warm-up each; reported: the
median seconds of each, their ratio, and whether the outputs are bit for bit the same (they
must be; the script exits 1 otherwise). ``--json`` writes the figures to a file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from random_checkpoint import QWEN2_5_VL_7B

from p2r_eval.models.vision_windows import group_window_attention, restore_window_attention

GRID_HEIGHT, GRID_WIDTH = 24, 42
"""Patches per frame side of a 640x360 frame resized to 336x588 (at most 200,704 pixels)."""
PATCH_VALUES = 3 * 2 * 14 * 14


def vision_tower(narrow: bool, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """A random-weight tower with the 7B's vision config (width 64 with ``narrow``)."""
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VisionTransformerPretrainedModel,
    )

    sizes = dict(QWEN2_5_VL_7B.vision)
    if narrow:
        sizes.update(hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=64)
    torch.manual_seed(0)
    config = Qwen2_5_VLVisionConfig(**sizes)
    with torch.device(device):
        tower = Qwen2_5_VisionTransformerPretrainedModel._from_config(
            config, attn_implementation="sdpa", dtype=dtype)
    return tower.eval()


def timed_forward(tower: torch.nn.Module, pixels: torch.Tensor, grid: torch.Tensor
                  ) -> tuple[float, torch.Tensor]:
    synchronize = torch.cuda.synchronize if pixels.is_cuda else (lambda: None)
    synchronize()
    started = time.perf_counter()
    with torch.inference_mode():
        output = tower(pixels, grid_thw=grid)
    synchronize()
    tensor = output if isinstance(output, torch.Tensor) else output[0]
    return time.perf_counter() - started, tensor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--narrow", action="store_true",
                        help="width 64 instead of the 7B's 1280 (same depth and windows)")
    parser.add_argument("--videos", type=int, default=8, help="videos in one forward")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    dtype = torch.bfloat16 if torch.device(args.device).type == "cuda" else torch.float32
    tower = vision_tower(args.narrow, args.device, dtype)
    grid = torch.tensor([[args.frames // 2, GRID_HEIGHT, GRID_WIDTH]] * args.videos)
    pixels = torch.randn(int(grid.prod(-1).sum()), PATCH_VALUES, dtype=dtype,
                         device=args.device)

    def use(mode: str) -> None:
        if mode == "grouped":
            group_window_attention(tower)
        else:
            restore_window_attention(tower)

    times: dict[str, list[float]] = {"transformers": [], "grouped": []}
    outputs: dict[str, torch.Tensor] = {}
    for mode in times:  # warm-up
        use(mode)
        outputs[mode] = timed_forward(tower, pixels, grid)[1]
    for repeat in range(args.repeats):
        for mode in list(times) if repeat % 2 == 0 else list(reversed(times)):
            use(mode)
            times[mode].append(timed_forward(tower, pixels, grid)[0])
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    same = torch.equal(outputs["grouped"], outputs["transformers"])
    depth = QWEN2_5_VL_7B.vision["depth"]
    windowed = depth - len(QWEN2_5_VL_7B.vision["fullatt_block_indexes"])
    print(f"vision tower: {'narrow (64 wide)' if args.narrow else 'Qwen2.5-VL-7B'}, "
          f"{depth} blocks ({windowed} windowed), {dtype}, {args.device}; "
          f"{args.videos} videos x {args.frames} frames of 336x588 in one forward; "
          f"median of {args.repeats}")
    print(f"  transformers' per-window loop: {medians['transformers']:.3f} s")
    print(f"  grouped by window length:      {medians['grouped']:.3f} s")
    ratio = medians["grouped"] / medians["transformers"]
    print(f"  grouped / transformers: {ratio:.3f}x; outputs bit for bit the same: {same}")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "device": args.device, "narrow": args.narrow, "dtype": str(dtype),
            "videos": args.videos, "frames": args.frames, "repeats": args.repeats,
            "median_s": medians, "ratio": ratio, "identical": same}, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
