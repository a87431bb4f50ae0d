"""The main ``p2r-eval`` command: arguments → settings → backend → run → table."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Any

from tabulate import tabulate

from p2r_eval.evaluate import EvalSettings, finished_run, model_display_name, run_evaluation
from p2r_eval.models.base import BackendError, DecodingSettings
from p2r_eval.runstore import RunStore, RunStoreError
from p2r_eval.tasks import AnnotationError, resolve_task_names
from p2r_eval.video import FramePolicy

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ALL_FAILED, EXIT_CANNOT_START = 0, 1, 2


def settings_from_args(args: argparse.Namespace) -> EvalSettings:
    decoding = DecodingSettings(
        max_new_tokens=args.max_new_tokens,
        do_sample=args.temperature > 0,
        temperature=args.temperature if args.temperature > 0 else 1.0,
        top_p=args.top_p if args.temperature > 0 else 1.0,
        seed=args.seed,
    )
    policy = FramePolicy(num_frames=args.frames, fps=args.fps, min_frames=args.min_frames,
                         max_frames=args.max_frames, max_pixels=args.max_pixels)
    return EvalSettings(
        model_spec=args.model,
        tasks=tuple(resolve_task_names(args.tasks)),
        protocol=args.protocol,
        prompt_style=args.prompt,
        frame_policy=policy,
        decoding=decoding,
        data_root=args.data_root.resolve() if args.data_root else None,
        limit=args.limit,
        batch_size=args.batch_size,
        retry_errors=args.retry_errors,
    )


def default_output(settings: EvalSettings) -> Path:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", model_display_name(settings.model_spec)) or "model"
    return Path("runs") / f"{name}-{settings.protocol}-{settings.prompt_style}"


def results_table(results: dict[str, Any]) -> str:
    rows = []
    for name, entry in results.get("tasks", {}).items():
        score = entry.get("score")
        rows.append([name, "-" if score is None else f"{score:.1f}", entry.get("n"),
                     entry.get("n_scored"), entry.get("n_errors"), entry.get("wall_time_s")])
    return tabulate(rows, headers=["task", "score %", "items", "scored", "errors", "time s"],
                    tablefmt="github")


def run_eval_command(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except ValueError as error:
        print(f"p2r-eval: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    output = args.output or default_output(settings)
    try:
        previous = RunStore(output).read_results()
    except RunStoreError as error:
        print(f"p2r-eval: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    if finished_run(previous, settings):
        print(f"{output}: this run is already finished; nothing to do.")
        return finish(previous, output, settings)
    try:
        backend = load_configured_backend(settings, args)
        results = run_evaluation(settings, backend, output, show_progress=not args.quiet)
    except (BackendError, RunStoreError, AnnotationError, FileNotFoundError) as error:
        print(f"p2r-eval: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    return finish(results, output, settings)


def load_configured_backend(settings: EvalSettings, args: argparse.Namespace):  # noqa: ANN201
    from p2r_eval.models import load_backend

    return load_backend(settings.model_spec, decoding=settings.decoding,
                        max_pixels=settings.frame_policy.max_pixels, device=args.device)


def finish(results: dict[str, Any], output: Path, settings: EvalSettings) -> int:
    """Print the table, regenerate the leaderboards, and choose the exit code."""
    print(results_table(results))
    print(f"results: {output / 'results.json'}")
    wanted = [results["tasks"].get(name, {}) for name in settings.tasks]
    total = sum(entry.get("n", 0) for entry in wanted)
    failed = sum(entry.get("n_errors", 0) for entry in wanted)
    if failed:
        print(f"{failed} of {total} items failed; their errors are in samples/<task>.jsonl")
    return EXIT_ALL_FAILED if total and failed == total else EXIT_OK
