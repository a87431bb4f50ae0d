"""The main ``p2r-eval`` command: arguments → settings → backend → run → table."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tabulate import tabulate

from p2r_eval.benchmarks.registry import AnnotationError, LoadedTask, load_task, resolve_task_names
from p2r_eval.cli.endpoint import endpoint_from_args
from p2r_eval.cli.main import EXIT_INTERRUPTED, EXIT_STOPPED
from p2r_eval.cli.settings import (
    decoding_from_args,
    input_policy_from_args,
    resolved_path_argument,
)
from p2r_eval.core.cache_root import cache_root
from p2r_eval.eval.checkpoints import (
    eval_dir,
    evaluate_checkpoints,
    is_checkpoint_run,
    watch_checkpoints,
    write_checkpoint_reports,
)
from p2r_eval.eval.loop import (
    EvalSettings,
    check_resumable,
    finished_run,
    model_display_name,
    run_evaluation,
    settings_record,
    start_decoding_early,
)
from p2r_eval.eval.results import RunResults, TaskEntry
from p2r_eval.eval.run_identity import partially_scored, task_data_identity, uses_demo_suite
from p2r_eval.eval.runstore import RunStore, RunStoreError
from p2r_eval.eval.shards import Shard, merge_shards, parse_shard, shard_dir
from p2r_eval.judge.base import JudgeError
from p2r_eval.media.requests import DecodePool
from p2r_eval.media.video import usable_cores
from p2r_eval.models import replay_file
from p2r_eval.models.base import BackendError
from p2r_eval.models.endpoint import EndpointSettings

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ALL_FAILED, EXIT_CANNOT_START, EXIT_JUDGE_PENDING = 0, 1, 2, 3


def settings_from_args(args: argparse.Namespace) -> EvalSettings:
    return EvalSettings(
        model_spec=args.model,
        tasks=tuple(resolve_task_names(args.tasks)),
        protocol=args.protocol,
        prompt_style=args.prompt,
        frame_policy=input_policy_from_args(args),
        decoding=decoding_from_args(args),
        data_root=resolved_path_argument(args.data_root, "--data-root") if args.data_root
        else None,
        limit=args.limit,
        batch_size=served_batch_size(args),
        retry_errors=args.retry_errors,
        frame_cache=resolved_path_argument(args.frame_cache, "--frame-cache")
        if args.frame_cache else None,
        decode_workers=args.decode_workers,
        decode_timeout_s=args.decode_timeout,
        shard=parse_shard(args.shard) if args.shard else None,
        attribute_errors=args.attribute_errors,
    )


def served_batch_size(args: argparse.Namespace) -> int:
    """Items per generate call: ``--batch-size``, and with ``--backend openai`` at least
    ``--concurrency`` (a batch's requests are what can be in flight at once)."""
    if args.backend == "openai":
        return max(args.batch_size, args.concurrency)
    return args.batch_size


def endpoint_of(args: argparse.Namespace) -> EndpointSettings | None:
    """The servers of ``--backend openai``; a ``ValueError`` for a URL without that backend
    or that backend without a URL."""
    if args.base_url and args.backend != "openai":
        raise ValueError("--base-url is for --backend openai")
    if args.backend == "openai" and not args.base_url:
        raise ValueError("--backend openai needs --base-url URL [URL ...]")
    return endpoint_from_args(args, args.base_url)


def default_output(settings: EvalSettings, backend: str = "hf") -> Path:
    """``runs/<model>[-<backend>]-<protocol>-<prompt>``: the backend named unless it is hf, so
    that a served or vLLM run of a model never lands in (and is taken for) its hf run."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", model_display_name(settings.model_spec)) or "model"
    runner = "" if backend == "hf" else f"-{backend}"
    return Path("runs") / f"{name}{runner}-{settings.protocol}-{settings.prompt_style}"


def target_folder(args: argparse.Namespace, settings: EvalSettings) -> Path:
    """Where the command writes its results: the run folder, or for a folder of
    checkpoints the folder their evaluations go to."""
    if is_checkpoint_run(Path(settings.model_spec)):
        return eval_dir(Path(settings.model_spec))
    return args.output or default_output(settings, args.backend)


def results_table(results: RunResults) -> str:
    """The run's scores for the terminal; a partial score (items awaiting a judge or not
    finished) in parentheses, and a line saying so when the data is the demo suite."""
    rows = []
    for name, entry in results.tasks.items():
        shown = "-" if entry.score is None else f"{entry.score:.1f}"
        if partially_scored(entry):
            shown = f"({shown}) partial"
        rows.append([name, shown, entry.n, entry.n_scored, entry.n_errors, entry.wall_time_s])
    table = tabulate(rows, headers=["task", "score %", "items", "scored", "errors", "time s"],
                     tablefmt="github")
    if uses_demo_suite(results.settings):
        table += ("\ndemo suite: a few synthetic items per benchmark (no --data-root), not the "
                  "benchmarks; these scores are not comparable with the paper's")
    return table


def run_eval_command(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        endpoint_of(args)
    except ValueError as error:
        print(f"p2r-eval: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    if is_checkpoint_run(Path(settings.model_spec)):
        return run_checkpoints_command(settings, args)
    output = args.output or default_output(settings, args.backend)
    run_folder = shard_dir(output, settings.shard) if settings.shard else output
    try:
        # Everything that can refuse the run is checked before a model is loaded.
        previous = RunStore(run_folder).read_results()
        loaded_tasks = [load_task(name, settings.data_root) for name in settings.tasks]
        task_data = {task.name: task_data_identity(task) for task in loaded_tasks}
        check_resumable(previous, settings_record(settings, {}), task_data, run_folder,
                        model_spec=settings.model_spec)
    except (RunStoreError, AnnotationError, FileNotFoundError) as error:
        print(f"p2r-eval: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    if previous is not None and finished_run(previous, settings, task_data,
                                             judging=args.judge != "none"):
        print(f"{run_folder}: this run is already finished; nothing to do.")
        results = previous
    else:
        try:
            RunStore(run_folder).check_free()
            judge = make_configured_judge(args)
            with decode_pool_for(settings, run_folder, loaded_tasks) as decode_pool:
                with collection_deferred():
                    backend = load_configured_backend(settings, args)
                leave_cores_to_decoding(backend, settings.decode_workers)
                results = run_evaluation(settings, backend, run_folder, judge=judge,
                                         show_progress=not args.quiet,
                                         loaded_tasks=loaded_tasks, decode_pool=decode_pool)
        except (BackendError, RunStoreError, AnnotationError, FileNotFoundError,
                JudgeError) as error:
            print(f"p2r-eval: {error}", file=sys.stderr)
            return EXIT_CANNOT_START
        except OSError as error:  # a full disk, a read-only or vanished folder, ...
            print(f"p2r-eval: stopped: {error}; {saved_items(run_folder, settings)}; run the "
                  "same command to resume once the cause is fixed", file=sys.stderr)
            return EXIT_STOPPED
        except KeyboardInterrupt:
            print(f"p2r-eval: interrupted: {saved_items(run_folder, settings)}; run the same "
                  "command to resume", file=sys.stderr)
            return EXIT_INTERRUPTED
    if settings.shard:
        return finish_shard(results, output, settings.shard, settings)
    return finish(results, output, settings)


def saved_items(run_folder: Path, settings: EvalSettings) -> str:
    """How many of the run's items are saved in its folder, in words."""
    store = RunStore(run_folder)
    count = sum(len(store.load_samples(task, repair=False)) for task in settings.tasks)
    return f"{count} items saved in {run_folder}"


@contextmanager
def decode_pool_for(
    settings: EvalSettings, run_folder: Path, loaded_tasks: Sequence[LoadedTask]
) -> Iterator[DecodePool | None]:
    """The run's decode workers (None with ``--decode-workers 0``), made before the model
    loads and already decoding the run's first items, so that both overlap."""
    if settings.decode_workers <= 0:
        yield None
        return
    with DecodePool(settings.decode_workers) as pool:
        if replay_file(settings.model_spec) is None:  # a replay reads no media
            start_decoding_early(pool, settings, loaded_tasks, run_folder)
        yield pool


@contextmanager
def collection_deferred() -> Iterator[None]:
    """Python's cyclic garbage collector paused while the block runs (a model's loading: the
    torch and transformers imports and the model make some 650,000 long-lived objects, which
    the collector would traverse again and again as they are made), and what the block made
    frozen afterwards (``gc.freeze``), so that the run's later collections skip it. For the
    demo model: 4.6-4.8 s of CPU to import and load instead of 5.5-6.3 s, 8 MB more memory
    (import-time garbage left uncollected), and a full collection during the run costs
    nothing instead of 0.3 s. For one model per process: a frozen model is never freed."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def torch_threads_beside(decode_workers: int, cores: int) -> int:
    """The torch threads a model on the CPU gets beside ``decode_workers`` worker processes:
    the cores they leave free, at least one."""
    return max(1, cores - decode_workers)


def leave_cores_to_decoding(backend: Any, decode_workers: int) -> None:
    """With decode workers and a model on the CPU, give torch only the cores the workers
    leave free. torch's threads wait for each other by spinning: on cores shared with the
    workers they spin against them (8 two-minute items on 2 busy cores, one worker: 52 s of
    CPU time with torch's default 2 threads, 26 s with 1). Speed only: outputs can change
    only by the float rounding that a CPU's thread count may change."""
    if decode_workers <= 0 or not str(getattr(backend, "device", "")).startswith("cpu"):
        return
    import torch

    torch.set_num_threads(torch_threads_beside(decode_workers, usable_cores()))


def run_checkpoints_command(settings: EvalSettings, args: argparse.Namespace) -> int:
    """Evaluate every checkpoint of a training run folder (see p2r_eval.eval.checkpoints)."""
    run_dir = Path(settings.model_spec)
    if args.output or settings.shard:
        print("p2r-eval: --output and --shard do not apply to a folder of checkpoints "
              f"(results go to {eval_dir(run_dir)})", file=sys.stderr)
        return EXIT_CANNOT_START

    def evaluate_and_report() -> list[tuple[int, Path]]:
        evaluated = evaluate_checkpoints(
            run_dir, settings, lambda spec: load_configured_backend(
                dataclasses.replace(settings, model_spec=spec), args),
            judge=judge, show_progress=not args.quiet, every=args.checkpoint_every)
        for path in write_checkpoint_reports(run_dir, evaluated):
            print(f"report: {path}")
        return evaluated

    try:
        judge = make_configured_judge(args)
        if args.watch:
            watch_checkpoints(run_dir, args.watch, evaluate_and_report)
            return EXIT_OK
        evaluated = evaluate_and_report()
    except (BackendError, RunStoreError, AnnotationError, JudgeError) as error:
        print(f"p2r-eval: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    for step, run in evaluated:
        print(f"step {step}: {run}")
    return EXIT_OK if evaluated else EXIT_ALL_FAILED


def finish_shard(results: RunResults, output: Path, shard: Shard,
                 settings: EvalSettings) -> int:
    """Report finished shard ``shard``; the last shard to finish merges them all."""
    index, count = shard
    print(f"shard {index}/{count} finished")
    try:
        merged = merge_shards(output, count)
    except RunStoreError as error:
        print(f"p2r-eval: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    if merged is None:
        print("other shards are still running; the last one to finish merges them")
        return finish(results, shard_dir(output, shard), settings, leaderboards=False)
    return finish(merged, output, settings)


def regenerate_leaderboards(output: Path) -> None:
    """Write the paper's main table (and the toy suite's, when the run scored it) with this
    run as a row into OUTPUT/leaderboards."""
    from p2r_eval.report.leaderboard import write_leaderboards
    from p2r_eval.report.measured import read_run, tables_of_run

    for table in tables_of_run(read_run(output)):
        for path in write_leaderboards([output], output / "leaderboards", table):
            print(f"leaderboard: {path}")


def make_configured_judge(args: argparse.Namespace) -> Any:
    """The judge asked for on the command line (a ``p2r_eval.judge.Judge``, imported only
    then), checked before any work starts."""
    from p2r_eval.judge import make_judge

    if args.judge == "none":
        if args.attribute_errors:
            raise JudgeError("--attribute-errors needs a judge (--judge ...)")
        return None
    return make_judge(args.judge, model=args.judge_model, base_url=args.judge_base_url,
                      cache_dir=args.judge_cache or cache_root() / "judge",
                      concurrency=args.judge_concurrency, max_retries=args.judge_max_retries,
                      timeout_s=args.judge_timeout)


def load_configured_backend(settings: EvalSettings, args: argparse.Namespace):
    from p2r_eval.models import load_backend

    return load_backend(settings.model_spec, decoding=settings.decoding,
                        max_pixels=settings.frame_policy.processor_max_pixels,
                        device=args.device, backend=args.backend,
                        tensor_parallel_size=args.tensor_parallel_size,
                        endpoint=endpoint_of(args), save_inputs=args.save_inputs)


def finish(
    results: RunResults, output: Path, settings: EvalSettings, leaderboards: bool = True
) -> int:
    """Print the table, regenerate the leaderboards, and choose the exit code."""
    print(results_table(results))
    print(f"results: {output / 'results.json'}  process analysis: {output / 'analysis.md'}")
    if leaderboards:
        regenerate_leaderboards(output)
    wanted = [results.tasks[name] for name in settings.tasks if name in results.tasks]
    total = sum(entry.n for entry in wanted)
    failed = sum(entry.n_errors for entry in wanted)
    if failed:
        print(f"{failed} of {total} items failed; their errors are in samples/<task>.jsonl")
    if total and failed == total:
        return EXIT_ALL_FAILED
    return EXIT_JUDGE_PENDING if report_judge_pending(results, wanted) else EXIT_OK


def report_judge_pending(results: RunResults, entries: list[TaskEntry]) -> bool:
    """Say (on stderr) why items a configured judge should have graded are not graded, and
    how to finish them; True if there are any."""
    pending = sum(entry.n_judge_pending or 0 for entry in entries)
    if not pending or results.judge is None:
        return False
    reason = results.judge.gave_up or "the judge failed on them"
    print(f"p2r-eval: {pending} judge-graded items are not scored yet ({reason}). Their outputs "
          "are kept: run the same command again to score them (judge replies already received "
          "are cached, no finished call is repeated).", file=sys.stderr)
    return True
