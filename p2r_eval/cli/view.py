"""``p2r-eval view``: the command line of the run viewer."""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Write a static site (open its index.html from disk, no server needed) to look at runs: the
run page (results with 95% CIs, breakdowns, process analysis, settings, leaderboard row),
a filterable sample list per task and a page per sample (the frames the model saw, the prompt,
the output with its segments highlighted, the scoring and the judge). With two or more
evaluation runs, each is also shown side by side with the first on the same items. A
p2r-train output folder shows its dynamics, the scores of each checkpoint and their runs."""

EXAMPLES = """\
examples:
  p2r-eval view runs/demo                          writes runs/demo/view/index.html
  p2r-eval view runs/a runs/b --output site --serve
  p2r-eval view runs/demo --card vsibench/3        also writes a case card (SVG)
  p2r-eval view runs/pa-grpo                       a training run and its checkpoints
"""


def add_subcommands(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "view", help="static site of runs: results, samples with frames, comparisons",
        description=DESCRIPTION, epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="p2r-eval run folders or p2r-train output folders")
    parser.add_argument("--output", type=Path, default=None, metavar="SITE_DIR",
                        help="where the site goes (default with one folder: RUN_DIR/view; "
                             "required with several)")
    parser.add_argument("--frame-cache", type=Path, default=None,
                        help="the frame cache the run used: frames are taken from it instead "
                             "of being sampled again")
    parser.add_argument("--no-frames", action="store_true",
                        help="no thumbnails (no video is read)")
    parser.add_argument("--card", action="append", default=[], metavar="TASK/ID",
                        help="also write this sample's case card to SITE_DIR/cards/ (SVG); "
                             "repeatable; the first run's sample")
    parser.add_argument("--serve", action="store_true",
                        help="then serve the site on 127.0.0.1 until Ctrl-C")
    parser.add_argument("--port", type=int, default=8000, help="port for --serve (0: any free)")
    parser.set_defaults(func=run_view_command)


def site_folder(args: argparse.Namespace) -> Path:
    if args.output is not None:
        return args.output
    if len(args.runs) > 1:
        raise ValueError("several folders: say where the site goes with --output SITE_DIR")
    return args.runs[0] / "view"


def run_view_command(args: argparse.Namespace) -> int:
    from p2r_eval.eval.runstore import RunStoreError
    from p2r_eval.report.tables import LeaderboardError
    from p2r_eval.report.view.frames import ThumbnailMaker
    from p2r_eval.report.view.runs import read_run_view
    from p2r_eval.report.view.site import SiteWriter, build_site, write_card

    try:
        output = site_folder(args)
        cards = [parse_card(spec) for spec in args.card]
        report = build_site(args.runs, output, frame_cache=args.frame_cache,
                            with_frames=not args.no_frames)
        if cards:
            writer = SiteWriter(output, ThumbnailMaker(output, args.frame_cache))
            run = read_run_view(args.runs[0])
            for task, sample_id in cards:
                print(f"case card: {write_card(writer, run, task, sample_id)}")
    except (LeaderboardError, RunStoreError, ValueError, OSError) as error:
        print(f"p2r-eval view: {error}", file=sys.stderr)
        return 2
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"site: {report.index} ({report.runs} runs, {report.samples} samples)")
    if args.serve:
        serve(output, args.port)
    return 0


def parse_card(spec: str) -> tuple[str, str]:
    task, separator, sample_id = spec.partition("/")
    if not separator or not task or not sample_id:
        raise ValueError(f"--card {spec!r}: expected TASK/ID, e.g. vsibench/3")
    return task, sample_id


def serve(folder: Path, port: int) -> None:
    """Serve ``folder`` on 127.0.0.1 until Ctrl-C."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
