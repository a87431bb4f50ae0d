"""The ``check-data`` subcommand of ``p2r-eval``: what a data root holds for each benchmark
(:mod:`p2r_eval.benchmarks.data_check`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from p2r_eval.benchmarks.data_check import check_data, render_report
from p2r_eval.benchmarks.registry import resolve_task_names


def add_subcommands(subparsers: Any) -> None:
    """Register ``check-data`` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "check-data",
        help="report records, missing/unreadable videos and unsafe paths per benchmark",
        description="Check a data root before inference: per benchmark the annotation files "
                    "and records found, missing and unreadable media, and paths that leave "
                    "the data root (docs/benchmarks.md). Exit status 1 when anything is wrong.",
    )
    parser.add_argument("--tasks", default="all", help="'all' or a comma list of benchmarks")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder with the benchmarks (default: the demo suite)")
    parser.add_argument("--no-probe", action="store_true",
                        help="only check that media exist; do not open them")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    parser.set_defaults(func=run_check_data)


def run_check_data(args: argparse.Namespace) -> int:
    reports = check_data(resolve_task_names(args.tasks), args.data_root, probe=not args.no_probe)
    if args.json:
        print(json.dumps([report.as_dict() for report in reports], indent=2))
    else:
        print(render_report(reports, args.data_root))
    return 0 if all(report.ok for report in reports) else 1
