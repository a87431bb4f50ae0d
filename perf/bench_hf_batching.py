"""hf backend: p2r-eval's batched, prefetched generation against one item at a time.

Usage::

    # on a GPU (issue 8): a random-weight Qwen2.5-VL-7B, then the benchmark
    python perf/random_checkpoint.py --preset 7b --device cuda --output /scratch/qwen25vl-7b-random
    python perf/bench_hf_batching.py --model /scratch/qwen25vl-7b-random
    # on a CPU: the demo model, a small run (~30 s on 2 cores)
    python perf/bench_hf_batching.py --model demo --device cpu --items 8 --batch-size 4 \\
        --decode-workers 1 --max-new-tokens 16

One :class:`p2r_eval.models.hf.HFBackend` (p2r-eval's defaults: bfloat16 and flash-attention-2
or SDPA on a GPU, float32 and SDPA on a CPU; ``max_pixels`` 256*28*28) answers ``--items``
video questions (default 32) in two ways:

- one at a time: decode the item's video in the main process, then ``generate([request])``,
  item after item: how Video-R1's and lmms-eval's hf paths run (batch 1, decoding between
  generate calls, the GPU idle meanwhile; the processor resizes the frames);
- p2r: p2r-eval's path: :func:`p2r_eval.media.requests.prefetch_requests` decodes in
  ``--decode-workers`` worker processes (default 4; they would resize a high-resolution
  video's frames to the processor's size, ``p2r_eval/models/frame_size.py``, but these
  640x360 clips' frames are left to the processor), ``prefetch_depth`` items ahead, while
  ``generate`` runs on batches of ``--batch-size`` (default 8) left-padded requests. The
  workers are started once before the timed runs (p2r-eval starts them while the model
  loads), so their start-up is not timed.

Both use the same items, frames (``--frames`` uniform frames, default 32, p2r's sampler), the
same prompt (p2r's default style) and greedy decoding with the same ``--max-new-tokens``
(default 128). The items are distinct synthetic 640x360 30 fps clips of 30 s, 31 s, 32 s ...
(``--clip-seconds`` sets the first length; made on first use in ``--workdir``). After an
untimed warm-up of each mode, the two modes take turns ``--repeats`` times, alternating which
goes first. Reported: items/s of each (median over repeats), their ratio, and on CUDA the GPU
busy fraction during each mode (the share of time a kernel was running as NVML reports it,
sampled every 100 ms: through ``torch.cuda.utilization`` when pynvml is installed, else
``nvidia-smi``) and its peak memory; where the main thread's time went (getting decoded
frames, inline or from the workers, against ``generate``), and the processor's share of
``generate`` per item, measured apart on one batch (``--json`` also writes these figures to
a file). How
many outputs are identical between the modes is shown as information: batched and unbatched
half-precision matmuls may round differently, and a left-padded batch may run more decoding
steps than its longest answer needs. A random-weight model rarely ends an
answer early, so nearly every item generates ``--max-new-tokens`` tokens in both modes.

Goal: p2r's items/s at least 4x one at a time's (on a GPU, with the 7B), and a GPU kept busy
while the videos are decoded.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from bench_sampler import Clip, ensure_clip
from tabulate import tabulate

from p2r_eval.core.items import Item
from p2r_eval.core.request import Request
from p2r_eval.eval.generation import batched
from p2r_eval.eval.loop import EvalSettings, prefetch_depth, request_builder
from p2r_eval.media.requests import DecodePool, MediaError, RequestBuilder, prefetch_requests
from p2r_eval.media.video import FramePolicy
from p2r_eval.models import DecodingSettings, load_backend
from p2r_eval.models.hf import HFBackend

GOAL = 4.0
MODES = ("one at a time", "p2r")
SAMPLE_INTERVAL_S = 0.1
T = TypeVar("T")


@dataclass
class MainThread:
    """Where the main thread's time went in one pass: getting each item's decoded frames
    (decoding them inline, or waiting for the decode workers) and ``generate`` (the
    processor, the model's generate and the decoding of its output)."""

    media_s: float = 0.0
    generate_s: float = 0.0


@dataclass(frozen=True)
class Run:
    """One timed pass of one mode over all items."""

    wall_s: float
    outputs: list[str]
    busy_fraction: float | None
    peak_memory_gib: float | None
    main_thread: MainThread


def item_clips(workdir: Path, count: int, seconds: int = 30) -> list[Path]:
    """``count`` distinct 640x360 clips of ``seconds``, ``seconds`` + 1 ... (30 s, 31 s ...),
    made on first use."""
    return [ensure_clip(workdir, Clip(f"{seconds + index}s", seconds + index, 640, 360))
            for index in range(count)]


def bench_items(clips: Sequence[Path]) -> list[Item]:
    return [Item(task="bench", id=f"clip{index}", question="What moves across the frame?",
                 options=("A. A square", "B. A circle", "C. Nothing", "D. The camera"),
                 answer="A", answer_type="multiple choice", media=clip)
            for index, clip in enumerate(clips)]


def as_request(item: Item, request: Request | MediaError) -> Request:
    if isinstance(request, MediaError):
        raise request
    return request


def one_at_a_time(backend: HFBackend, items: Sequence[Item], builder: RequestBuilder,
                  settings: EvalSettings, pool: DecodePool | None, spent: MainThread
                  ) -> list[str]:
    """Decode inline, then generate a batch of one, item after item; frames at their decoded
    size, resized by the processor, as the reference paths have them."""
    at_decoded_size = builder.at_decoded_size()
    outputs: list[str] = []
    for item in items:
        started = time.perf_counter()
        request = at_decoded_size(item)
        decoded = time.perf_counter()
        outputs += backend.generate([request])
        spent.media_s += decoded - started
        spent.generate_s += time.perf_counter() - decoded
    return outputs


def timed_pulls(stream: Iterable[T], spent: MainThread) -> Iterator[T]:
    """``stream``'s elements, adding the time spent waiting for each to ``spent.media_s``."""
    iterator = iter(stream)
    while True:
        started = time.perf_counter()
        try:
            element = next(iterator)
        except StopIteration:
            return
        finally:
            spent.media_s += time.perf_counter() - started
        yield element


def p2r(backend: HFBackend, items: Sequence[Item], builder: RequestBuilder,
        settings: EvalSettings, pool: DecodePool | None, spent: MainThread) -> list[str]:
    """p2r-eval's loop: decode ahead in the pool's workers, generate batch by batch."""
    stream = prefetch_requests(items, builder, workers=settings.decode_workers,
                               depth=prefetch_depth(settings), pool=pool)
    outputs: list[str] = []
    for batch in batched(timed_pulls(stream, spent), settings.batch_size):
        started = time.perf_counter()
        outputs += backend.generate([as_request(item, request) for item, request in batch])
        spent.generate_s += time.perf_counter() - started
    return outputs


RUNNERS: dict[str, Callable[..., list[str]]] = {"one at a time": one_at_a_time, "p2r": p2r}


def processor_s_per_item(backend: HFBackend, items: Sequence[Item], builder: RequestBuilder,
                         batch_size: int) -> float:
    """The processor's time per item on one batch of ``batch_size`` items (decoded first,
    untimed), measured apart from the timed passes: the part of ``generate`` that runs on
    the CPU before the model starts."""
    requests = [builder(item) for item in items[:batch_size]]
    started = time.perf_counter()
    backend.processor_outputs(requests)
    return (time.perf_counter() - started) / len(requests)


def nvidia_smi_reader(device: torch.device) -> Callable[[], float]:
    """Reads the utilization of ``device`` from nvidia-smi, found by its UUID (nvidia-smi
    numbers GPUs regardless of ``CUDA_VISIBLE_DEVICES``)."""
    uuid = str(torch.cuda.get_device_properties(device).uuid).lower()
    command = ["nvidia-smi", "--query-gpu=uuid,utilization.gpu", "--format=csv,noheader,nounits"]

    def read() -> float:
        listing = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        for line in listing.splitlines():
            gpu, percent = (field.strip() for field in line.split(","))
            if gpu.lower().removeprefix("gpu-") == uuid:
                return float(percent)
        raise RuntimeError(f"nvidia-smi lists no GPU with UUID {uuid}:\n{listing}")

    return read


def utilization_reader(device: str) -> Callable[[], float] | None:
    """A function returning the GPU's utilization in percent, or None (not CUDA, no NVML)."""
    target = torch.device(device)
    if target.type != "cuda":
        return None
    if importlib.util.find_spec("pynvml") is not None:
        return lambda: float(torch.cuda.utilization(target))
    if shutil.which("nvidia-smi"):
        return nvidia_smi_reader(target)
    return None


class BusySampler:
    """Samples ``read`` (a utilization in percent) every ``interval_s`` in a thread while
    the ``with`` block runs; :meth:`fraction` is the mean, from 0 to 1."""

    def __init__(self, read: Callable[[], float] | None, interval_s: float = SAMPLE_INTERVAL_S):
        self.read = read
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        assert self.read is not None
        while not self._stop.wait(self.interval_s):
            try:
                self.samples.append(self.read())
            except Exception as error:  # the benchmark goes on without it
                print(f"GPU utilization sampling stopped: {error}", flush=True)
                self.samples.clear()
                return

    def __enter__(self) -> BusySampler:
        if self.read is not None:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.read is not None:
            self._stop.set()
            self._thread.join()

    def fraction(self) -> float | None:
        return statistics.fmean(self.samples) / 100 if self.samples else None


def timed_run(mode: str, backend: HFBackend, items: Sequence[Item], builder: RequestBuilder,
              settings: EvalSettings, pool: DecodePool | None,
              read_utilization: Callable[[], float] | None) -> Run:
    on_cuda = torch.device(backend.device).type == "cuda"
    if on_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    spent = MainThread()
    with BusySampler(read_utilization) as sampler:
        started = time.perf_counter()
        outputs = RUNNERS[mode](backend, items, builder, settings, pool, spent)
        if on_cuda:
            torch.cuda.synchronize()
        wall_s = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if on_cuda else None
    return Run(wall_s, outputs, sampler.fraction(), peak, spent)


def device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def model_summary(backend: HFBackend) -> str:
    config = backend.model.config
    text, vision = config.get_text_config(), getattr(config, "vision_config", None)
    parameters = sum(p.numel() for p in backend.model.parameters())
    size = f"{parameters / 1e9:.2f} B" if parameters >= 1e8 else f"{parameters / 1e6:.2f} M"
    summary = (f"{type(backend.model).__name__}, {size} parameters; text "
               f"{text.num_hidden_layers} layers x {text.hidden_size}, vocab {text.vocab_size}")
    if vision is not None:
        summary += f"; vision {vision.depth} blocks x {vision.hidden_size}"
    return summary


def main_thread_medians(runs: dict[str, list[Run]]) -> dict[str, dict[str, float]]:
    """Each mode's median seconds getting decoded frames and in ``generate``."""
    return {mode: {"media": statistics.median(run.main_thread.media_s for run in runs[mode]),
                   "generate": statistics.median(run.main_thread.generate_s
                                                 for run in runs[mode])}
            for mode in MODES}


def summary(args: argparse.Namespace, backend: HFBackend, runs: dict[str, list[Run]],
            processor_s: float) -> dict[str, object]:
    """The figures of the report, for ``--json`` (perf/gpu_check.sh renders them)."""
    rates = {mode: statistics.median(args.items / run.wall_s for run in runs[mode])
             for mode in MODES}
    busy = {mode: [r.busy_fraction for r in runs[mode] if r.busy_fraction is not None]
            for mode in MODES}
    peaks = {mode: [r.peak_memory_gib for r in runs[mode] if r.peak_memory_gib is not None]
             for mode in MODES}
    return {
        "device": device_name(backend.device), "model": model_summary(backend),
        "dtype": str(backend.torch_dtype), "attention": backend.attn_implementation,
        "items": args.items, "frames": args.frames, "batch_size": args.batch_size,
        "decode_workers": args.decode_workers, "max_new_tokens": args.max_new_tokens,
        "items_per_s": rates, "speed_up": rates["p2r"] / rates["one at a time"],
        "gpu_busy": {mode: statistics.median(busy[mode]) if busy[mode] else None
                     for mode in MODES},
        "peak_gib": {mode: max(peaks[mode]) if peaks[mode] else None for mode in MODES},
        "main_thread_s": main_thread_medians(runs), "processor_s_per_item": processor_s,
        "goal": GOAL,
    }


def print_report(args: argparse.Namespace, backend: HFBackend, settings: EvalSettings,
                 runs: dict[str, list[Run]], processor_s: float) -> None:
    import transformers

    print(f"\ndevice: {device_name(backend.device)}; torch {torch.__version__}, transformers "
          f"{transformers.__version__}")
    print(f"model: {args.model}: {model_summary(backend)}")
    print(f"settings: {backend.torch_dtype}, {backend.attn_implementation}, {args.items} items "
          f"(640x360 clips, {args.clip_seconds} s and up), {args.frames} frames, max_pixels "
          f"{backend.max_pixels}, greedy, {args.max_new_tokens} new tokens; p2r: batch "
          f"{args.batch_size}, {args.decode_workers} decode workers, prefetch depth "
          f"{prefetch_depth(settings)}; {args.repeats} repeat(s), load average "
          f"{os.getloadavg()[0]:.1f}\n")
    rates = {mode: statistics.median(args.items / run.wall_s for run in runs[mode])
             for mode in MODES}
    rows = []
    for mode in MODES:
        busy = [run.busy_fraction for run in runs[mode] if run.busy_fraction is not None]
        peaks = [run.peak_memory_gib for run in runs[mode] if run.peak_memory_gib is not None]
        rows.append([mode, f"{statistics.median(run.wall_s for run in runs[mode]):.1f}",
                     f"{rates[mode]:.3f}", f"{rates[mode] / rates['one at a time']:.2f}",
                     f"{statistics.median(busy):.0%}" if busy else "n/a",
                     f"{max(peaks):.1f}" if peaks else "n/a"])
    print(tabulate(rows, headers=["mode", "wall s", "items/s", "vs one at a time",
                                  "GPU busy", "peak GiB"]))
    first = {mode: runs[mode][0].outputs for mode in MODES}
    same = sum(a == b for a, b in zip(first["one at a time"], first["p2r"], strict=True))
    print(f"\nidentical outputs between the modes: {same}/{args.items} (information only)")
    spent = main_thread_medians(runs)
    print("\nthe main thread's time (s): getting decoded frames (inline one at a time; waiting "
          "for the workers in p2r) / in generate")
    for mode in MODES:
        print(f"  {mode}: {spent[mode]['media']:.1f} / {spent[mode]['generate']:.1f}")
    print(f"  of generate, the processor: {processor_s:.3f} s per item (one batch of "
          f"{min(args.batch_size, args.items)}, measured apart)")
    ratio = rates["p2r"] / rates["one at a time"]
    print("\ngoal (p2r items/s / one at a time's)")
    print(f"  [{'met' if ratio >= GOAL else 'NOT MET'}] >= {GOAL:g}x ({ratio:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo", help="'demo' or a checkpoint folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--decode-workers", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "p2r-bench-hf-batching",
                        help="where the clips are made (once)")
    parser.add_argument("--clip-seconds", type=int, default=30,
                        help="length of the first clip (the next ones 1 s longer each)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the figures to this JSON file")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    items = bench_items(item_clips(args.workdir, args.items, args.clip_seconds))
    settings = EvalSettings(model_spec=args.model, tasks=("bench",),
                            frame_policy=FramePolicy(num_frames=args.frames),
                            decoding=DecodingSettings(max_new_tokens=args.max_new_tokens),
                            batch_size=args.batch_size, decode_workers=args.decode_workers)
    print(f"loading {args.model} on {args.device} ...", flush=True)
    backend = load_backend(args.model, decoding=settings.decoding, device=args.device,
                           max_pixels=settings.frame_policy.max_pixels)
    assert isinstance(backend, HFBackend)
    builder = request_builder(settings, needs_media=True, frame_size=backend.frame_size)
    read_utilization = utilization_reader(backend.device)
    pool = DecodePool(args.decode_workers) if args.decode_workers > 0 else None
    try:
        print("warming up (one item, then one batch) ...", flush=True)
        one_at_a_time(backend, items[:1], builder, settings, pool, MainThread())
        p2r(backend, items[: args.batch_size], builder, settings, pool, MainThread())
        runs: dict[str, list[Run]] = {mode: [] for mode in MODES}
        for repeat in range(args.repeats):
            for mode in MODES if repeat % 2 == 0 else tuple(reversed(MODES)):
                print(f"repeat {repeat + 1}/{args.repeats}: {mode} ...", flush=True)
                runs[mode].append(timed_run(mode, backend, items, builder, settings, pool,
                                            read_utilization))
        processor_s = processor_s_per_item(backend, items, builder, args.batch_size)
    finally:
        if pool is not None:
            pool.close()
    print_report(args, backend, settings, runs, processor_s)
    if args.json is not None:
        args.json.write_text(json.dumps(summary(args, backend, runs, processor_s), indent=1))


if __name__ == "__main__":
    main()
