"""The ``leaderboard`` and ``compare`` subcommands of ``p2r-eval``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from p2r_eval.benchmarks.registry import own_leaderboards
from p2r_eval.core.stats import DEFAULT_CI_RESAMPLES, DEFAULT_TEST_RESAMPLES
from p2r_eval.eval.runstore import RunStoreError
from p2r_eval.report.compare import compare_runs, render_comparison
from p2r_eval.report.leaderboard import write_leaderboards
from p2r_eval.report.markdown import render_markdown
from p2r_eval.report.measured import measured_rows
from p2r_eval.report.tables import TABLE_NAMES, LeaderboardError, load_table

LEADERBOARD_HELP = """\
Render the paper's tables as markdown, with runs added as measured rows.

examples:
  p2r-eval leaderboard                                # the paper's main table to stdout
  p2r-eval leaderboard runs/p2r-7b --as "VideoP2R (ours, re-run)" --out boards/
  p2r-eval leaderboard runs/a runs/b --table ablation --out boards/
  p2r-eval leaderboard --table both --out leaderboards  # regenerate the committed tables

With --out, writes <table>.md and, with runs, <table>_bars.png (measured rows vs the paper,
with 95% CI whiskers); without --out, prints the markdown. The perception-probe figure comes
from `p2r-eval probe`.
"""

COMPARE_HELP = """\
Paired bootstrap test of two runs on the items both scored: is A's gain over B real?

examples:
  p2r-eval compare runs/p2r-7b runs/qwen-7b
  p2r-eval compare runs/a runs/b --tasks vsibench,mvbench --resamples 20000
"""


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``leaderboard`` and ``compare`` on the p2r-eval command line."""
    board = subparsers.add_parser(
        "leaderboard",
        help="render the paper's tables with runs as measured rows",
        description=LEADERBOARD_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    board.add_argument(
        "results",
        nargs="*",
        type=Path,
        metavar="RESULTS",
        help="run output folders (or their results.json)",
    )
    board.add_argument(
        "--table",
        choices=[*TABLE_NAMES, *own_leaderboards().values(), "both"],
        default="main",
        help="which table (default: main)",
    )
    board.add_argument(
        "--as",
        dest="names",
        action="append",
        default=[],
        metavar="NAME",
        help="row name for the run at the same position (repeatable)",
    )
    board.add_argument("--out", type=Path, help="folder for the markdown and PNGs")
    board.add_argument(
        "--resamples",
        type=int,
        default=DEFAULT_CI_RESAMPLES,
        help=f"bootstrap resamples for CIs (default {DEFAULT_CI_RESAMPLES})",
    )
    board.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    board.set_defaults(func=run_leaderboard_command)

    compare = subparsers.add_parser(
        "compare",
        help="paired bootstrap test between two runs",
        description=COMPARE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("run_a", type=Path, metavar="RUN_A")
    compare.add_argument("run_b", type=Path, metavar="RUN_B")
    compare.add_argument("--tasks", help="comma-separated tasks (default: all both runs scored)")
    compare.add_argument(
        "--resamples",
        type=int,
        default=DEFAULT_TEST_RESAMPLES,
        help=f"bootstrap resamples (default {DEFAULT_TEST_RESAMPLES})",
    )
    compare.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    compare.set_defaults(func=run_compare_command)


def run_leaderboard_command(args: argparse.Namespace) -> int:
    tables = list(TABLE_NAMES) if args.table == "both" else [args.table]
    try:
        for table in tables:
            if args.out:
                paths = write_leaderboards(
                    args.results, args.out, table, args.names,
                    n_resamples=args.resamples, seed=args.seed,
                )  # fmt: skip
                print("\n".join(str(path) for path in paths))
            else:
                rows = measured_rows(args.results, args.names, args.resamples, args.seed)
                print(render_markdown(load_table(table), rows))
    except (LeaderboardError, RunStoreError) as error:
        print(f"p2r-eval leaderboard: {error}", file=sys.stderr)
        return 2
    return 0


def run_compare_command(args: argparse.Namespace) -> int:
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    try:
        comparisons = compare_runs(
            args.run_a, args.run_b, tasks, n_resamples=args.resamples, seed=args.seed
        )
        print(render_comparison(args.run_a, args.run_b, comparisons))
    except (LeaderboardError, RunStoreError) as error:
        print(f"p2r-eval compare: {error}", file=sys.stderr)
        return 2
    return 0
