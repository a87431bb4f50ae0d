"""``p2r-eval models``: the paper's models and the settings that evaluate each (the zoo)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from p2r_eval.models.zoo import ZooError, find_model, load_zoo, model_details, zoo_table

EXIT_OK, EXIT_UNKNOWN_MODEL = 0, 2


def add_subcommands(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models",
        help="the paper's models: hub ids, prompt styles, frame settings, commands",
        description="List the models of the paper's main table with the settings that "
                    "evaluate each (p2r_eval/models/zoo.yaml), or show one model's settings "
                    "and the p2r-eval command that runs it.",
    )
    parser.add_argument("name", nargs="?", default=None,
                        help="one model, by table name or hub id (case-insensitive)")
    parser.set_defaults(func=models_command)


def models_command(args: argparse.Namespace) -> int:
    if args.name is None:
        print(zoo_table(load_zoo()))
        print("\n`p2r-eval models NAME` shows one model's settings, notes and command.")
        return EXIT_OK
    try:
        model = find_model(args.name)
    except ZooError as error:
        print(f"p2r-eval models: {error}", file=sys.stderr)
        return EXIT_UNKNOWN_MODEL
    print(model_details(model))
    return EXIT_OK
