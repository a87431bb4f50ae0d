"""The ``merge`` subcommand of ``p2r-eval``: merge the shards of a data-parallel run
(:mod:`p2r_eval.eval.shards`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from p2r_eval.eval.runstore import RunStoreError
from p2r_eval.eval.shards import merge_shards


def add_subcommands(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "merge",
        help="merge the shards of a data-parallel run",
        description="Merge OUTPUT/shards/<i>-of-<n> into OUTPUT (samples in item order and "
                    "results.json), once every shard has finished. Runs automatically when "
                    "the last shard finishes; use this after a shard was re-run by hand.",
    )
    parser.add_argument("output", type=Path)
    parser.set_defaults(func=_merge_command)


def _merge_command(args: argparse.Namespace) -> int:
    counts = sorted({int(p.name.split("-of-")[1]) for p in (args.output / "shards").glob("*-of-*")})
    if len(counts) != 1:
        print(f"p2r-eval merge: expected shards of one size under {args.output / 'shards'}",
              file=sys.stderr)
        return 2
    try:
        merged = merge_shards(args.output, counts[0])
    except RunStoreError as error:
        print(f"p2r-eval merge: {error}", file=sys.stderr)
        return 2
    if merged is None:
        print(f"p2r-eval merge: not every shard of {args.output} has finished yet")
        return 1
    print(f"merged {counts[0]} shards into {args.output / 'results.json'}")
    return 0
