"""``p2r-train annotate``: build process-aware CoT data (VideoP2R-CoT) from VQA records.

Three steps per item, as in the VideoP2R paper: a teacher VLM writes an
``<observation>``/``<think>``/``<answer>`` trace; the trace must follow the template and its
answer must score at least a per-type threshold under the training reward rules; a text-only
judge must find the observation sufficient to answer. Kept items go to ``cot.jsonl`` in the
release format, the others to ``dropped.jsonl`` with their step and reason, and
``summary.json`` counts everything. See docs/annotate.md.

Modules: :mod:`p2r_train.cot.records` (input), :mod:`p2r_train.cot.steps` (the
steps), :mod:`p2r_train.cot.pipeline` (the resumable run, shards),
:mod:`p2r_train.cot.report` (output records, summary), :mod:`p2r_train.cot.store`
(the output folder).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p2r_train.cot.steps import DEFAULT_MIN_SCORES, DEFAULT_TEACHER
from p2r_train.cot.store import STEPS

from p2r_eval.cli.endpoint import add_endpoint_arguments, endpoint_from_args

if TYPE_CHECKING:
    from p2r_train.cot.pipeline import AnnotateSettings, Shard

# Heavy modules (the judge's API SDKs, torch through the backends, PyAV) are imported inside
# the functions that need them, so that registering the subcommand and --help stay fast.

__all__ = ["add_subcommand", "dry_run_report", "main", "run_annotate_command",
           "settings_from_args"]

EXIT_OK, EXIT_CANNOT_START = 0, 2

EXAMPLES = """\
examples:
  p2r-train annotate --input Video-R1-260k.json --media-root /data/Video-R1-data \\
      --output runs/cot --teacher Qwen/Qwen2.5-VL-72B-Instruct --judge anthropic
  p2r-train annotate ... --limit 20 --dry-run      what would run, nothing loaded or written
  p2r-train annotate ... --shard 3/8               shard 3 of 8 into OUTPUT/shards/3-of-8
  p2r-train annotate ... --merge                   merge finished shards into OUTPUT
  p2r-train annotate ... --teacher replay:outputs.jsonl
      verify and judge stored teacher outputs (lines {"task": "annotate", "id", "output"})

Running the same command again resumes: no item is generated, verified or judged twice.
"""


def add_subcommand(subparsers: Any) -> None:
    """Register ``annotate`` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "annotate",
        help="build process-aware CoT data: teacher, verification, observation sufficiency",
        description="A teacher VLM writes observation/think/answer traces; traces that break "
                    "the template or score below a per-type threshold are dropped; a text-only "
                    "judge drops traces whose observation cannot support the answer. Writes "
                    "cot.jsonl (kept), dropped.jsonl (with reasons) and summary.json.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run_annotate_command)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--input", type=Path, required=True,
                      help="VQA records in Video-R1's training format (JSON list or JSONL)")
    data.add_argument("--media-root", type=Path, required=True,
                      help="folder the records' media paths are relative to")
    data.add_argument("--output", type=Path, required=True, help="output folder")
    teacher = parser.add_argument_group("step 1: teacher")
    teacher.add_argument("--teacher", default=DEFAULT_TEACHER,
                         help=f"'demo', a local checkpoint folder, a hub id or replay:FILE "
                              f"(default {DEFAULT_TEACHER})")
    teacher.add_argument("--teacher-base-url", nargs="+", default=None, metavar="URL",
                         help="OpenAI-compatible servers of --teacher (e.g. vllm serve "
                              "replicas; docs/serving.md): --teacher is then the served name")
    add_endpoint_arguments(teacher, prefix="teacher-")
    teacher.add_argument("--device", default=None, help="torch device (default: cuda if any)")
    teacher.add_argument("--batch-size", type=int, default=1, help="items per generate call")
    teacher.add_argument("--frames", type=int, default=32, help="uniformly sampled frames (32)")
    teacher.add_argument("--fps", type=float, default=None,
                         help="sample at this rate instead (between --min-frames/--max-frames)")
    teacher.add_argument("--min-frames", type=int, default=4)
    teacher.add_argument("--max-frames", type=int, default=768)
    teacher.add_argument("--max-pixels", type=int, default=256 * 28 * 28,
                         help="pixels per frame after resizing (default 256*28*28)")
    teacher.add_argument("--max-new-tokens", type=int, default=1024)
    teacher.add_argument("--temperature", type=float, default=0.0,
                         help="0 = greedy (default); >0 samples with --top-p and --seed")
    teacher.add_argument("--top-p", type=float, default=1.0)
    teacher.add_argument("--seed", type=int, default=0)
    teacher.add_argument("--frame-cache", type=Path, default=None,
                         help="reuse sampled frames across runs (see p2r-eval --frame-cache)")
    teacher.add_argument("--frame-folder-fps", type=float, default=None, metavar="FPS",
                         help="the rate the frames of data_type 'frame' records (frame folders) "
                              "were taken at, e.g. 3 for MVBench's episodic_reasoning; without "
                              "it such records fail, saying so")
    teacher.add_argument("--decode-workers", type=int, default=0,
                         help="processes decoding upcoming media while the teacher generates")
    verify = parser.add_argument_group("step 2: verification")
    defaults = ", ".join(f"{name}={value:g}" for name, value in DEFAULT_MIN_SCORES.items())
    verify.add_argument("--min-score", action="append", default=[], metavar="TYPE=VALUE",
                        help=f"minimum score to keep an answer, per problem type (comma list, "
                             f"repeatable); defaults: {defaults}")
    judge = parser.add_argument_group("step 3: observation sufficiency judge")
    judge.add_argument("--judge", default="anthropic",
                       help="judge backend: anthropic (default; key in ANTHROPIC_API_KEY), "
                            "openai (any OpenAI-compatible server), local (a model folder) "
                            "or toy (the toy suite's offline rule)")
    judge.add_argument("--judge-model", default=None,
                       help="judge model (default: the backend's default)")
    judge.add_argument("--judge-base-url", default=None, help="API endpoint (proxy, vLLM)")
    judge.add_argument("--judge-cache", type=Path, default=None,
                       help="judge reply cache folder (default OUTPUT/judge_cache)")
    judge.add_argument("--judge-concurrency", type=int, default=8)
    judge.add_argument("--judge-max-retries", type=int, default=6)
    judge.add_argument("--judge-timeout", type=float, default=120.0, help="seconds per call")
    judge.add_argument("--judge-batch", action="store_true",
                       help="anthropic only: send step 3 as one Message Batch once generation "
                            "ends (half the price, up to 24 h latency; an interrupted wait is "
                            "collected by the next run, never paid twice)")
    judge.add_argument("--judge-batch-poll", type=float, default=60.0, metavar="SECONDS",
                       help="how often to poll a Message Batch (default 60)")
    run = parser.add_argument_group("run")
    run.add_argument("--limit", type=int, default=None, help="only the first N records")
    run.add_argument("--shard", default=None, metavar="I/N",
                     help="only shard I of N (0-based) into OUTPUT/shards/I-of-N; the last "
                          "shard to finish merges all into OUTPUT")
    run.add_argument("--merge", action="store_true",
                     help="only merge the finished shards of OUTPUT (after copying them there)")
    run.add_argument("--stop-after", choices=STEPS, default="judge",
                     help="run the steps up to this one (e.g. generate on a GPU machine, "
                          "judge later elsewhere)")
    run.add_argument("--retry-errors", action="store_true",
                     help="on resume, retry items that failed (media, teacher, judge errors)")
    run.add_argument("--dry-run", action="store_true",
                     help="show what would run (items, work left, first prompt); loads no "
                          "model, calls no judge, writes nothing")
    run.add_argument("--quiet", action="store_true", help="no progress bar")


def settings_from_args(args: argparse.Namespace) -> AnnotateSettings:
    """Settings from parsed arguments; ``ValueError`` for values that make no sense."""
    from p2r_train.cot.pipeline import AnnotateSettings, JudgeSettings
    from p2r_train.cot.steps import parse_min_scores

    from p2r_eval.cli.settings import decoding_from_args, frame_policy_from_args
    from p2r_eval.eval.shards import parse_shard
    from p2r_eval.judge import BACKENDS as JUDGE_BACKENDS

    decoding, policy = decoding_from_args(args), frame_policy_from_args(args)
    judge = JudgeSettings(
        backend=args.judge,
        model=args.judge_model,
        base_url=args.judge_base_url,
        cache_dir=args.judge_cache,
        concurrency=args.judge_concurrency,
        max_retries=args.judge_max_retries,
        timeout_s=args.judge_timeout,
        batch=args.judge_batch,
        batch_poll_s=args.judge_batch_poll,
    )
    if judge.batch and judge.backend != "anthropic":
        raise ValueError("--judge-batch needs --judge anthropic (Message Batches API)")
    if judge.backend not in JUDGE_BACKENDS:
        raise ValueError(f"--judge {judge.backend!r}: choose one of {', '.join(JUDGE_BACKENDS)}")
    if judge.concurrency < 1:
        raise ValueError(f"--judge-concurrency must be >= 1, got {judge.concurrency}")
    return AnnotateSettings(
        input=args.input,
        media_root=args.media_root,
        output=args.output,
        teacher=args.teacher,
        teacher_endpoint=endpoint_from_args(args, args.teacher_base_url, prefix="teacher-"),
        frame_policy=policy,
        decoding=decoding,
        device=args.device,
        batch_size=(max(args.batch_size, args.teacher_concurrency) if args.teacher_base_url
                    else args.batch_size),
        decode_workers=args.decode_workers,
        frame_cache=args.frame_cache,
        frame_folder_fps=args.frame_folder_fps,
        min_scores=parse_min_scores(args.min_score),
        judge=judge,
        limit=args.limit,
        shard=parse_shard(args.shard) if args.shard else None,
        stop_after=args.stop_after,
        retry_errors=args.retry_errors,
    )


def dry_run_report(settings: AnnotateSettings) -> str:
    """What a run with ``settings`` would do, computed without loading a model, calling the
    judge or writing anything: items selected, work left per step, records that would fail
    before the teacher, missing media, thresholds, and the first item's prompt."""
    from p2r_train.cot.pipeline import plan_work, select_records
    from p2r_train.cot.records import (
        UnsafeMediaPathError,
        load_vqa_records,
        record_item,
        record_problem,
        resolve_media_path,
    )
    from p2r_train.cot.steps import TEACHER_PROMPT_VERSION, TEACHER_SYSTEM_PROMPT
    from p2r_train.cot.store import AnnotationStore

    from p2r_eval.core.prompts import build_prompt

    records = select_records(load_vqa_records(settings.input), settings.limit, settings.shard)
    state = AnnotationStore(settings.run_dir).peek_state()
    plan = plan_work(records, state, settings.stop_after, settings.retry_errors)
    invalid, unsafe, missing, first_item = 0, 0, 0, None
    for record in plan.generate:
        if record_problem(record.fields) is not None:
            invalid += 1
            continue
        try:
            media = resolve_media_path(settings.media_root, record.fields["path"])
        except UnsafeMediaPathError:
            unsafe += 1
            continue
        item = record_item(record, media, settings.frame_folder_fps)
        missing += item.media is None or not item.media.exists()
        first_item = first_item or item
    thresholds = ", ".join(f"{k}={v:g}" for k, v in settings.min_scores.items())
    lines = [
        f"dry run: {settings.run_dir} (nothing is loaded, called or written)",
        f"records selected: {len(records)}",
        f"left to do: generate {len(plan.generate)}, verify {len(plan.verify)}, "
        f"judge {len(plan.judge)} (then judging what passes); steps up to {settings.stop_after}",
        f"would fail before the teacher: {invalid} invalid records, {unsafe} unsafe media "
        f"paths, {missing} missing media files",
        f"teacher: {settings.teacher} (prompt {TEACHER_PROMPT_VERSION}); frames "
        f"{settings.frame_policy.key()}",
        f"thresholds: {thresholds}",
        f"judge: {settings.judge.backend} {settings.judge.model or '(default model)'}",
    ]
    if first_item is not None:
        lines += ["", f"first prompt (item {first_item.id}):", "[system]",
                  TEACHER_SYSTEM_PROMPT, "[user]", build_prompt(first_item, "p2r")]
    return "\n".join(lines)


def run_annotate_command(args: argparse.Namespace) -> int:
    """The ``annotate`` subcommand: 0 when the run finished (failed items included, they are
    counted in the summary), 2 when it could not start."""
    from p2r_train.cot.pipeline import run_annotation
    from p2r_train.cot.records import AnnotateInputError
    from p2r_train.cot.report import render_summary

    from p2r_eval.eval.runstore import RunStoreError
    from p2r_eval.judge import JudgeError
    from p2r_eval.models.base import BackendError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from_args(args)
        if args.dry_run:
            print(dry_run_report(settings))
            return EXIT_OK
        if args.merge:
            return merge_command(settings)
        summary = run_annotation(settings, show_progress=not args.quiet)
        print(render_summary(summary))
        print(f"output: {settings.run_dir}")
        return finish_shard(settings, settings.shard) if settings.shard else EXIT_OK
    except (ValueError, AnnotateInputError, RunStoreError, BackendError, JudgeError,
            OSError) as error:
        print(f"p2r-train annotate: {error}", file=sys.stderr)
        return EXIT_CANNOT_START


def finish_shard(settings: AnnotateSettings, shard: Shard) -> int:
    """After shard ``shard``: merge all shards into OUTPUT when every one has finished."""
    from p2r_train.cot.pipeline import merge_shards
    from p2r_train.cot.report import render_summary

    merged = merge_shards(settings, shard[1])
    if merged is None:
        print("other shards are not finished yet; the last one to finish merges them")
        return EXIT_OK
    print(f"all {shard[1]} shards finished; merged into {settings.output}")
    print(render_summary(merged))
    return EXIT_OK


def merge_command(settings: AnnotateSettings) -> int:
    """``--merge``: merge the shards found under OUTPUT (1 while one is unfinished)."""
    from p2r_train.cot.pipeline import merge_shards, shard_count
    from p2r_train.cot.report import render_summary

    count = shard_count(settings.output)
    if count is None:
        print(f"p2r-train annotate: no shards under {settings.output / 'shards'}",
              file=sys.stderr)
        return EXIT_CANNOT_START
    merged = merge_shards(settings, count)
    if merged is None:
        print(f"p2r-train annotate: not every shard of {settings.output} has finished",
              file=sys.stderr)
        return 1
    print(render_summary(merged))
    print(f"merged {count} shards into {settings.output}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m p2r_train.cot.annotate ...``: the subcommand on its own."""
    parser = argparse.ArgumentParser(prog="p2r-train")
    add_subcommand(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["annotate", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
