"""Throughput through a server: ``p2r-eval serve`` + the openai backend at concurrency 1, 4 and
16, against the in-process hf backend, same model and items.

Usage::

    python perf/bench_served_throughput.py                       # demo model, CPU, ~2 min
    python perf/bench_served_throughput.py --model /ckpt/qwen25vl-7b --device cuda --items 64

The items are the demo suite's video items (their frames sampled once, 32 uniform frames at
p2r's default 256*28*28 pixel cap), asked with p2r's prompt, greedy, ``--max-new-tokens``
tokens. In-process: one :class:`~p2r_eval.models.hf.HFBackend`, one item per generate call
(batch 1) and batches of ``--batch-size``. Served: one ``p2r-eval serve`` process (batching
concurrent requests up to ``--max-batch-size``) and one
:class:`~p2r_eval.models.openai_backend.OpenAIBackend` sending every item (PNG frames, no
response cache) with ``c`` requests in flight, for each ``c`` of ``--concurrency``. Each mode
runs once untimed, then ``--repeats`` timed times; reported: items/s (median), the ratio of
each served mode to in-process batch 1, and whether the outputs equal the in-process ones.

On a CPU the client, the server and the model share the same cores: the served figures there
measure the protocol's cost (PNG encoding and decoding, HTTP, JSON) more than what a server
on its own GPU gains.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from p2r_eval.benchmarks.registry import load_task, paper_task_names
from p2r_eval.core.request import Request
from p2r_eval.media.requests import RequestBuilder
from p2r_eval.media.video import FramePolicy
from p2r_eval.models import resolve_model
from p2r_eval.models.base import DecodingSettings
from p2r_eval.models.endpoint import EndpointSettings
from p2r_eval.models.hf import HFBackend
from p2r_eval.models.openai_backend import OpenAIBackend

MAX_PIXELS = 256 * 28 * 28


def video_requests(count: int, frames: int) -> list[Request]:
    """The first ``count`` video items of the demo suite as requests."""
    builder = RequestBuilder("p2r", FramePolicy(num_frames=frames, max_pixels=MAX_PIXELS))
    items = [item for name in paper_task_names() for item in load_task(name, None).items
             if item.media_type == "video"]
    if len(items) < count:
        raise SystemExit(f"the demo suite has {len(items)} video items; ask for fewer")
    return [builder(item) for item in items[:count]]


def start_server(model: str, device: str | None, max_batch_size: int, tokens: int) -> tuple[
        subprocess.Popen, str]:
    command = [str(Path(sys.executable).with_name("p2r-eval")), "serve", "--model", model,
               "--port", "0", "--max-batch-size", str(max_batch_size),
               "--max-new-tokens", str(tokens)]
    if device:
        command += ["--device", device]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    line = server.stdout.readline()  # type: ignore[union-attr]
    match = re.search(r"on (http://\S+/v1)", line)
    if not match:
        server.kill()
        raise SystemExit(f"p2r-eval serve did not start: {line!r}")
    return server, match.group(1)


def timed(run: Callable[[], list[str]], repeats: int) -> tuple[float, list[str]]:
    """Median seconds over ``repeats`` runs after one untimed run, and the outputs."""
    outputs = run()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), outputs


def in_batches(backend: HFBackend, requests: Sequence[Request], size: int) -> list[str]:
    outputs: list[str] = []
    for start in range(0, len(requests), size):
        outputs += backend.generate(requests[start:start + size])
    return outputs


def in_process_rows(
    args: argparse.Namespace, decoding: DecodingSettings, requests: Sequence[Request]
) -> tuple[list[tuple[str, float, bool]], list[str]]:
    """Seconds of the in-process hf backend at batch 1 and ``--batch-size``, and the batch-1
    outputs (the reference); the model is released on return."""
    local = HFBackend(resolve_model(args.model), decoding=decoding, device=args.device,
                      max_pixels=MAX_PIXELS)
    base_s, reference = timed(lambda: in_batches(local, requests, 1), args.repeats)
    batched_s, outputs = timed(lambda: in_batches(local, requests, args.batch_size),
                               args.repeats)
    return [("in-process hf, batch 1", base_s, True),
            (f"in-process hf, batch {args.batch_size}", batched_s, outputs == reference)], reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--device", default=None)
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    decoding = DecodingSettings(max_new_tokens=args.max_new_tokens)
    requests = video_requests(args.items, args.frames)
    print(f"{args.items} items, {args.frames} frames, {args.max_new_tokens} new tokens, "
          f"model {args.model}, device {args.device or 'default'}")
    print(f"{'mode':32} {'items/s':>8} {'vs batch 1':>10}  outputs equal", flush=True)
    rows, reference = in_process_rows(args, decoding, requests)
    base_s = rows[0][1]
    for row in rows:
        print_row(row, args.items, base_s)
    server, url = start_server(args.model, args.device, args.max_batch_size,
                               args.max_new_tokens)
    try:
        for concurrency in args.concurrency:
            endpoint = EndpointSettings(base_urls=(url,), concurrency=concurrency,
                                        cache_dir=None)
            client = OpenAIBackend(args.model, decoding=decoding, endpoint=endpoint,
                                   max_pixels=MAX_PIXELS)
            seconds, outputs = timed(partial(client.generate, requests), args.repeats)
            print_row((f"served, concurrency {concurrency}", seconds, outputs == reference),
                      args.items, base_s)
    finally:
        server.kill()
        server.wait()


def print_row(row: tuple[str, float, bool], items: int, base_s: float) -> None:
    name, seconds, equal = row
    print(f"{name:32} {items / seconds:8.2f} {base_s / seconds:9.2f}x  {equal}", flush=True)


if __name__ == "__main__":
    main()
