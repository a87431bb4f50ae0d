"""The ``probe`` subcommand of ``p2r-eval``: the perception-only text probe
(:mod:`p2r_eval.eval.probe`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from p2r_eval.benchmarks.registry import resolve_task_names
from p2r_eval.cli.endpoint import add_endpoint_arguments, endpoint_from_args
from p2r_eval.eval.loop import EvalSettings
from p2r_eval.eval.probe import render_probe_table, run_probe
from p2r_eval.models.base import Backend, DecodingSettings


def add_subcommands(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="perception-only probe: observations as text, no video, to a reasoner",
        description="M1 (--perceiver) runs with the process-aware prompt; its <observation> is "
                    "given as text, without the video, to M2 (--reasoner), which is also run "
                    "with the raw video. Prints raw-video vs text-only accuracy per benchmark "
                    "and writes probe.json, probe.md and probe.png into --output.",
        epilog="example: p2r-eval probe --perceiver /ckpt/VideoP2R-7B "
               "--reasoner /ckpt/Qwen2.5-VL-7B-Instruct --tasks all --data-root /data",
    )
    parser.add_argument("--perceiver", required=True, help="process-aware model (M1)")
    parser.add_argument("--reasoner", required=True, help="model answering from text (M2)")
    served = parser.add_argument_group(
        "served models", "a model behind OpenAI-compatible servers (p2r-eval --backend openai; "
        "docs/serving.md): give its servers, and name it by its served name")
    served.add_argument("--perceiver-base-url", nargs="+", default=None, metavar="URL",
                        help="servers of --perceiver")
    served.add_argument("--reasoner-base-url", nargs="+", default=None, metavar="URL",
                        help="servers of --reasoner")
    add_endpoint_arguments(served)
    parser.add_argument("--tasks", default="all")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--protocol", choices=("video-r1", "official"), default="video-r1")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--output", type=Path, default=Path("runs/probe"))
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=_probe_command)


def _probe_command(args: argparse.Namespace) -> int:
    from p2r_eval.media.video import FramePolicy
    from p2r_eval.models import load_backend

    decoding = DecodingSettings(max_new_tokens=args.max_new_tokens)
    base = EvalSettings(
        model_spec="", tasks=tuple(resolve_task_names(args.tasks)), protocol=args.protocol,
        frame_policy=FramePolicy(num_frames=args.frames), decoding=decoding,
        data_root=args.data_root.resolve() if args.data_root else None, limit=args.limit,
        batch_size=(max(args.batch_size, args.concurrency)
                    if args.perceiver_base_url or args.reasoner_base_url else args.batch_size),
    )
    endpoints = {args.perceiver: endpoint_from_args(args, args.perceiver_base_url),
                 args.reasoner: endpoint_from_args(args, args.reasoner_base_url)}
    if args.perceiver == args.reasoner and args.perceiver_base_url != args.reasoner_base_url:
        print("p2r-eval probe: one model cannot run in two places; give it one set of servers")
        return 2

    def load(spec: str) -> Backend:
        endpoint = endpoints[spec]
        return load_backend(spec, decoding=decoding, endpoint=endpoint,
                            backend="openai" if endpoint else "hf")

    summary = run_probe(base, args.perceiver, args.reasoner, args.output, load,
                        show_progress=not args.quiet)
    print(render_probe_table(summary["tasks"]))
    print(f"probe: {args.output / 'probe.json'}")
    return 0
