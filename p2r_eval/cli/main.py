"""``p2r-eval``: evaluate a video-LLM checkpoint on the VideoP2R benchmarks.

The main command evaluates; subcommands (``p2r-eval SUBCOMMAND --help``) do the rest.
Heavy imports (torch, transformers) happen only once a command runs, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from p2r_eval.cli.endpoint import add_endpoint_arguments

EXAMPLES = """\
examples:
  p2r-eval --model demo --tasks all
      the built-in tiny model on the built-in demo suite (no downloads)
  p2r-eval --model /ckpt/VideoP2R-7B --tasks all --data-root /data/Video-R1-eval --batch-size 8
      a local checkpoint on the real benchmarks, the paper's protocol and inputs (video-r1)
  p2r-eval --model /ckpt/Video-R1-7B --prompt r1 --tasks mvbench,videomme --data-root /data
  p2r-eval --model replay:outputs.jsonl --tasks vsibench --data-root /data --protocol official
      re-score outputs produced elsewhere (lines {"task", "id", "output"}); needs no video
  p2r-eval --backend openai --model Qwen/Qwen2.5-VL-7B-Instruct --base-url http://gpu1:8000/v1 \
      http://gpu2:8000/v1 --concurrency 32 --tasks all --data-root /data
      a model behind vllm serve replicas (docs/serving.md): same frames, prompts and decoding
  p2r-eval --model RUN_DIR --tasks all --limit 50
      RUN_DIR written by a trainer: its starting model (step 0), each checkpoint-<step> and
      its final model (the last step) are evaluated once into RUN_DIR/eval, with a
      leaderboard row per step and a scores-by-step plot

subcommands (p2r-eval SUBCOMMAND --help):
  make-demo-model DIR   build the tiny offline Qwen2.5-VL with random weights (the tests' model)
  check-data            report records, missing/unreadable videos and unsafe paths per benchmark
  leaderboard           render the paper's tables with runs added as rows
  compare               paired bootstrap test between two runs on the same items
  probe                 perception-only probe: observations as text, no video, to a reasoner
  merge                 merge the shards of a data-parallel run (--shard I/N)
  models                the paper's models with the settings recommended for each
  serve                 serve a checkpoint behind an OpenAI-compatible endpoint
  view RUN_DIR...       static site of runs: results, samples with their frames, comparisons

A run folder holds results.json and samples/<task>.jsonl; running the same command again
resumes it (finished items are never generated twice) and a finished run is not redone.
Exit codes: 0 done; 1 every item failed; 2 the run could not start; 3 judge-graded items
were left unscored because the judge failed (run the command again to grade them); 4 stopped
by an error that is no item's (a full disk, a read-only folder, a path the system refuses, a
bug); 130 interrupted (Ctrl-C). After 3, 4 and 130 every saved item is kept: run the same
command again to resume.
"""

SubcommandRegistrar = Callable[[Any], None]
EXIT_STOPPED = 4
"""A command stopped by an error that is no item's: the file system (a full disk, a read-only
folder, a path it refuses) or a bug. Everything saved so far is kept."""
EXIT_INTERRUPTED = 130


def build_eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2r-eval",
        description="Evaluate a video-LLM checkpoint on VideoP2R's seven video benchmarks.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"p2r {package_version()}")
    model = parser.add_argument_group("model")
    model.add_argument("--model", required=True,
                       help="'demo', a local checkpoint folder, a hub id, a folder of "
                            "checkpoint-<step> folders, or replay:FILE.jsonl")
    model.add_argument("--backend", choices=("hf", "vllm", "openai"), default="hf",
                       help="inference backend: hf (transformers, default), vllm (offline "
                            "LLM, needs the vllm extra) or openai (a model behind "
                            "OpenAI-compatible servers: --model is the served name, with "
                            "--base-url)")
    model.add_argument("--tensor-parallel-size", type=int, default=1,
                       help="GPUs per model replica (vllm backend)")
    served = parser.add_argument_group(
        "served model (--backend openai; docs/serving.md)",
        "requests spread over the replicas, retried on another when one fails; replies "
        "cached by request content; tokens and cost in results.json")
    served.add_argument("--base-url", nargs="+", default=None, metavar="URL",
                        help="one or more OpenAI-compatible endpoints serving --model, e.g. "
                             "http://127.0.0.1:8000/v1")
    add_endpoint_arguments(served)
    model.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    model.add_argument("--batch-size", type=int, default=1, help="items per generate call")
    data = parser.add_argument_group("data")
    data.add_argument("--tasks", default="all", help="'all' (the paper's seven: vsibench,"
                      "videommmu,mmvu,vcrbench,mvbench,tempcompass,videomme) or a comma list of "
                      "tasks, e.g. all,toy (toy: the synthetic suite) or tasks of --task-dir")
    data.add_argument("--task-dir", type=existing_folder, action="append", default=[],
                      metavar="DIR",
                      help="a folder of task YAMLs (with their .py modules) to use besides "
                           "tasks/; repeatable; also P2R_TASK_PATH (docs/contributing.md)")
    data.add_argument("--data-root", type=Path, default=None,
                      help="folder with the benchmarks (docs/benchmarks.md); default: demo suite")
    data.add_argument("--limit", type=positive_int, default=None, metavar="N",
                      help="first N items of each task (N >= 1)")
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument("--protocol", choices=("video-r1", "official"), default="video-r1",
                          help="video-r1 reproduces the paper's tables (default)")
    protocol.add_argument("--prompt", choices=("p2r", "r1", "direct"), default="p2r",
                          help="prompt style (default: p2r, observation/think/answer)")
    protocol.add_argument("--input-policy", choices=("video-r1", "videorft", "lmms-eval",
                                                      "uniform"), default=None,
                          help="which frames the model sees and at what size, as a reference "
                               "pipeline does (docs/models.md): video-r1 (default under "
                               "--protocol video-r1: 2 fps, 4-32 frames, 128-256 x 28x28 "
                               "pixels), videorft, lmms-eval, or uniform (the frame options "
                               "below; default under --protocol official)")
    protocol.add_argument("--frames", type=int, default=None,
                          help="uniform policy: uniformly sampled frames (default 32); giving "
                               "any frame option selects --input-policy uniform")
    protocol.add_argument("--fps", type=float, default=None,
                          help="uniform policy: sample at this rate instead (between "
                               "--min-frames/--max-frames)")
    protocol.add_argument("--min-frames", type=int, default=None, help="uniform policy (4)")
    protocol.add_argument("--max-frames", type=int, default=None, help="uniform policy (768)")
    protocol.add_argument("--max-pixels", type=int, default=None,
                          help="uniform policy: pixels per frame after the processor's resize "
                               "(default 256*28*28)")
    protocol.add_argument("--max-new-tokens", type=int, default=1024)
    protocol.add_argument("--temperature", type=float, default=0.0,
                          help="0 = greedy (default); >0 samples with --top-p and --seed")
    protocol.add_argument("--top-p", type=float, default=1.0)
    protocol.add_argument("--seed", type=int, default=0)
    judge = parser.add_argument_group(
        "judge", "LLM judge for judge-graded items (VCR-Bench open answers, MMVU open-ended "
        "under --protocol official) and for --attribute-errors; without one those items are "
        "reported as not scored")
    judge.add_argument("--judge", choices=("none", "anthropic", "openai", "local", "toy"),
                       default="none", help="judge backend (anthropic reads ANTHROPIC_API_KEY; "
                                            "toy: the toy suite's offline rule)")
    judge.add_argument("--judge-model", default=None,
                       help="judge model (anthropic default: a current Claude Sonnet; local: "
                            "a model folder)")
    judge.add_argument("--judge-base-url", default=None,
                       help="OpenAI-compatible endpoint for --judge openai (e.g. vllm serve)")
    judge.add_argument("--judge-cache", type=Path, default=None,
                       help="judge reply cache folder (default: ~/.cache/p2r/judge)")
    judge.add_argument("--judge-concurrency", type=int, default=8)
    judge.add_argument("--judge-max-retries", type=int, default=6,
                       help="retries per judge request (exponential backoff); once one request "
                            "has spent them, no more items are sent to the judge in this run")
    judge.add_argument("--judge-timeout", type=float, default=120.0,
                       help="seconds per judge call")
    judge.add_argument("--attribute-errors", action="store_true",
                       help="ask the judge whether each wrong answer's observation was "
                            "sufficient: perception vs reasoning failures in the analysis")
    run = parser.add_argument_group("run")
    run.add_argument("--output", type=Path, default=None,
                     help="run folder (default: runs/<model>[-<backend>]-<protocol>-<prompt>, "
                          "the backend named unless hf)")
    run.add_argument("--save-inputs", type=Path, default=None, metavar="DIR",
                     help="write each item's exact model inputs (the processor's output "
                          "tensors) to DIR/<task>/<item id>.safetensors (hf backend)")
    run.add_argument("--retry-errors", action="store_true",
                     help="on resume, retry items whose sample records an error")
    run.add_argument("--frame-cache", type=Path, default=None,
                     help="folder where sampled frames are stored once per (video, frame "
                          "policy) and reused across runs and models (safe to share)")
    run.add_argument("--decode-workers", type=int, default=0,
                     help="worker processes decoding upcoming items while the model "
                          "loads and generates (default 0: decode inline)")
    run.add_argument("--decode-timeout", type=float, default=600.0, metavar="SECONDS",
                     help="time budget for decoding one video; a video over it is that item's "
                          "error (default 600)")
    run.add_argument("--shard", default=None, metavar="I/N",
                     help="evaluate only shard I of N (0-based: every N-th video with all its "
                          "questions) into OUTPUT/shards/I-of-N; the last shard to finish "
                          "merges all into OUTPUT. 'auto' takes RANK and WORLD_SIZE from "
                          "accelerate launch / torchrun")
    run.add_argument("--watch", type=float, default=None, metavar="SECONDS",
                     help="with a folder of checkpoint-<step> folders: keep polling it for "
                          "new checkpoints every SECONDS (Ctrl-C stops)")
    run.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS",
                     help="with a folder of checkpoints: only those whose step is a multiple "
                          "of STEPS")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def package_version() -> str:
    from p2r_eval import __version__

    return __version__


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def existing_folder(text: str) -> Path:
    """An argparse type: a folder that exists."""
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder")
    return path


def subcommand_registrars() -> dict[str, SubcommandRegistrar]:
    """Subcommand name → the module function that registers it (imported on demand)."""
    def registrar(module: str) -> SubcommandRegistrar:
        def register(subparsers: Any) -> None:
            __import__(module, fromlist=["add_subcommands"]).add_subcommands(subparsers)
        return register

    return {
        "make-demo-model": register_make_demo_model,
        "check-data": registrar("p2r_eval.cli.check_data"),
        "leaderboard": registrar("p2r_eval.cli.leaderboard"),
        "compare": registrar("p2r_eval.cli.leaderboard"),
        "merge": registrar("p2r_eval.cli.merge"),
        "probe": registrar("p2r_eval.cli.probe"),
        "models": registrar("p2r_eval.cli.models"),
        "view": registrar("p2r_eval.cli.view"),
        "serve": registrar("p2r_eval.cli.serve"),
    }


def register_make_demo_model(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "make-demo-model",
        help="build the tiny offline Qwen2.5-VL (random weights) into DIR",
        description="Build a tiny but real Qwen2.5-VL offline: local BPE tokenizer with the Qwen "
                    "special tokens and the six process tags, the real processor, random "
                    "weights. Loadable with --model DIR.",
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=_make_demo_model)


def _make_demo_model(args: argparse.Namespace) -> int:
    from p2r_eval.models.demo import make_demo_model

    path = make_demo_model(args.directory, seed=args.seed)
    print(f"demo model written to {path}")
    return 0


def run_subcommand(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="p2r-eval")
    subparsers = parser.add_subparsers(dest="command", required=True)
    subcommand_registrars()[argv[0]](subparsers)
    args = parser.parse_args(argv)
    return int(args.func(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``p2r-eval`` command; an interruption or an error that is no item's ends it with
    one line on stderr and its own exit code (the README's list), not a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if isinstance(sys.stdout, io.TextIOWrapper):  # text from data may hold lone surrogates
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        return run_command(argv)
    except KeyboardInterrupt:
        print("p2r-eval: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        raise
    except OSError as error:
        print(f"p2r-eval: stopped: {error}", file=sys.stderr)
        return EXIT_STOPPED
    except Exception:  # a bug: its traceback, then the exit code that says so
        traceback.print_exc()
        print("p2r-eval: stopped by an unexpected error (please report it with the traceback "
              "above); everything saved so far is kept", file=sys.stderr)
        return EXIT_STOPPED


def run_command(argv: list[str]) -> int:
    if argv and argv[0] in subcommand_registrars():
        return run_subcommand(argv)
    args = build_eval_parser().parse_args(argv)
    from p2r_eval.benchmarks.registry import add_task_folder
    from p2r_eval.cli.evaluate import run_eval_command

    for folder in args.task_dir:
        add_task_folder(folder)

    return run_eval_command(args)


def entry_point() -> int:
    """Console script: ``main`` with a quiet exit when the reader of our output goes away."""
    try:
        return main()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1

