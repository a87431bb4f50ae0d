"""The Python API: ``p2r_eval.run_eval`` runs exactly what ``p2r-eval`` runs.

Settings are the command's options, named as in ``p2r-eval --help`` with underscores
(``max_new_tokens=256``, ``batch_size=8``, ``judge="anthropic"``). They are turned into the
command's arguments and parsed by the command's own parser, so validation, defaults,
resume, the run store and the leaderboards are the command's; nothing is re-implemented
here. Decoding settings are given once, like every other setting.

    import p2r_eval
    run = p2r_eval.run_eval(model="demo", tasks=["mvbench", "videomme"], limit=4)
    print(run.tasks["mvbench"].score, run.output)
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2r_eval.eval.results import RunResults, TaskEntry
from p2r_eval.eval.runstore import RunStore

__all__ = ["EvalRun", "TaskResult", "run_eval"]


@dataclass(frozen=True)
class TaskResult:
    """One task's entry of results.json (:class:`p2r_eval.eval.results.TaskEntry`), with the
    fields most often read at hand."""

    name: str
    score: float | None
    n: int
    n_scored: int
    n_errors: int
    breakdown: Mapping[str, Any]
    entry: TaskEntry

    @classmethod
    def from_entry(cls, name: str, entry: TaskEntry) -> TaskResult:
        return cls(name=name, score=entry.score, n=entry.n, n_scored=entry.n_scored,
                   n_errors=entry.n_errors, breakdown=entry.breakdown, entry=entry)


@dataclass(frozen=True)
class EvalRun:
    """What a ``run_eval`` call produced: the exit code the command would have returned,
    the run folder, and its results.json (:class:`p2r_eval.eval.results.RunResults`; None
    when the command stopped before writing one) with its tasks."""

    exit_code: int
    output: Path
    results: RunResults | None
    tasks: Mapping[str, TaskResult]

    @property
    def ok(self) -> bool:
        """True when the command would have exited 0."""
        return self.exit_code == 0

    @property
    def leaderboards(self) -> tuple[Path, ...]:
        """The paper's tables regenerated with this run as a row."""
        return tuple(sorted((self.output / "leaderboards").glob("*.md")))


def run_eval(
    model: str | Path,
    tasks: str | Sequence[str] = "all",
    *,
    data_root: str | Path | None = None,
    output: str | Path | None = None,
    **settings: Any,
) -> EvalRun:
    """Evaluate ``model`` on ``tasks`` exactly as ``p2r-eval`` does, and return the run.

    ``settings`` are the command's other options (``protocol``, ``prompt``, ``limit``,
    ``temperature``, ``max_new_tokens``, ``judge``, ...). An unknown or invalid setting
    raises ValueError with the command's own message. A folder of checkpoints is evaluated
    as the command does, into ``MODEL/eval``; the returned run is then that folder's.
    """
    from p2r_eval.cli.evaluate import run_eval_command, settings_from_args, target_folder
    from p2r_eval.cli.main import build_eval_parser

    options = dict(settings, model=str(model), tasks=task_list_text(tasks),
                   data_root=data_root, output=output)
    parser = build_eval_parser()
    args = parse_options(parser, options)
    exit_code = run_eval_command(args)
    folder = target_folder(args, settings_from_args(args))
    results = RunStore(folder).read_results()
    entries = results.tasks if results is not None else {}
    return EvalRun(exit_code=exit_code, output=folder, results=results,
                   tasks={name: TaskResult.from_entry(name, entry)
                          for name, entry in entries.items()})


def task_list_text(tasks: str | Sequence[str]) -> str:
    return tasks if isinstance(tasks, str) else ",".join(tasks)


def parse_options(parser: argparse.ArgumentParser, options: Mapping[str, Any]
                  ) -> argparse.Namespace:
    """The command's arguments for ``options``, parsed by the command's parser."""
    actions = {action.dest: action for action in parser._actions if action.option_strings}
    argv: list[str] = []
    for name, value in options.items():
        if name not in actions:
            known = ", ".join(sorted(dest for dest in actions if dest not in ("help", "version")))
            raise ValueError(f"unknown setting {name!r}; the settings are: {known}")
        argv += option_arguments(actions[name], value)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return parser.parse_args(argv)
    except SystemExit:
        raise ValueError(stderr.getvalue().strip().splitlines()[-1]) from None


def option_arguments(action: argparse.Action, value: Any) -> list[str]:
    """``value`` for one option as command-line words (none when it is the default)."""
    flag = action.option_strings[-1]
    if value is None or (action.nargs == 0 and value == action.default):
        return []
    if action.nargs == 0:  # a switch: given only to change its default
        if value is not True and value != action.const:
            raise ValueError(f"{action.dest} is a switch: pass True to set {flag}")
        return [flag]
    if isinstance(value, Iterable) and not isinstance(value, (str, Path)):
        return [flag, *(str(item) for item in value)]
    return [flag, str(value)]
