"""``p2r-train recipe toy``: the paper's whole pipeline at toy scale, on a CPU.

1. ``data``: the toy suite (:mod:`p2r_eval.benchmarks.toy_suite`): training, validation and test
videos;
2. ``annotate``: the three CoT steps over the training items, all real: the teacher is a
   replay of the suite's rule-made traces, a known fifth of them flawed (wrong answers,
   broken templates, observations without the decisive fact); verification and the toy
   sufficiency judge must drop exactly those (checked: the step fails otherwise);
3. ``sft``: SFT of the random tiny Qwen2.5-VL (the demo architecture) on the kept traces;
4. ``rl``: PA-GRPO (``--judge toy``) and plain GRPO (``--process-agnostic``) from the SFT
   checkpoint, side by side (one CPU thread each);
5. ``eval``: each run (SFT, GRPO, PA-GRPO) on the held-out test split, by ``p2r-eval --model
   RUN`` (every model of the run, into ``RUN/eval/``);
6. ``leaderboard``: the ablation-shaped table (``leaderboards/toy.yaml``) with bootstrap CIs,
   and the paired test of each RL row against SFT-only.

Every step runs the same ``p2r-train`` / ``p2r-eval`` command a user would type, in a child
process with ``OMP_NUM_THREADS`` set (one thread per process: on two shared cores, a tiny
model trains several times faster on one thread than on two). The commands, their logs and
their wall times go into ``OUTPUT/recipe.json`` and ``OUTPUT/logs/``. Running the recipe
again skips the steps already done.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RECIPE_FILE = "recipe.json"
RL_VARIANTS = {"pa-grpo": "PA-GRPO", "grpo": "GRPO (process-agnostic RL)"}
SFT_ROW = "SFT-only"


@dataclass(frozen=True)
class ToySettings:
    """The toy recipe's sizes and hyper-parameters (defaults: what learned in the measured
    run reported in the README)."""

    output: Path
    train_items: int = 480
    validation_items: int = 80
    test_items: int = 160
    seed: int = 0
    frames: int = 8
    max_pixels: int = 56 * 56
    sft_epochs: float = 20.0
    sft_lr: float = 3e-3
    sft_batch_size: int = 8
    rl_steps: int = 60
    rl_lr: float = 2e-4
    rl_batch_size: int = 8
    rl_generations: int = 4
    rl_max_completion_length: int = 64
    rl_temperature: float = 1.0
    eval_max_new_tokens: int = 96
    threads: int = 1

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": self.train_items, "validation": self.validation_items,
                "test": self.test_items}

    def as_dict(self) -> dict[str, Any]:
        return {key: str(value) if isinstance(value, Path) else value
                for key, value in asdict(self).items()}


class RecipeError(RuntimeError):
    """A step failed or produced something other than what the recipe checks for."""


# -- commands -----------------------------------------------------------------------------------
def train_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "p2r_train.cli", *args]


def eval_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "p2r_eval.cli", *args]


def media_options(settings: ToySettings) -> list[str]:
    return ["--frames", str(settings.frames), "--max-pixels", str(settings.max_pixels)]


def quiet_training_options() -> list[str]:
    """No tensorboard, no background decoding processes (one thread per run), CPU."""
    return ["--report-to", "none", "--dataloader-workers", "0", "--cpu",
            "--save-steps", "100000"]


def annotate_command(settings: ToySettings, suite: Path) -> list[str]:
    train = suite / "train"
    return train_command(
        "annotate", "--input", str(train / "train.json"), "--media-root", str(train),
        "--output", str(settings.output / "cot"), "--teacher",
        f"replay:{train / 'teacher.jsonl'}", "--judge", "toy", "--quiet")


def sft_command(settings: ToySettings, suite: Path, base_model: Path) -> list[str]:
    return train_command(
        "sft", "--model", str(base_model), "--data", str(settings.output / "cot" / "cot.jsonl"),
        "--media-root", str(suite / "train"), "--output", str(settings.output / "sft"),
        *media_options(settings),
        "--epochs", str(settings.sft_epochs), "--lr", str(settings.sft_lr),
        "--batch-size", str(settings.sft_batch_size), "--seed", str(settings.seed),
        "--logging-steps", "10", *quiet_training_options())


def rl_command(settings: ToySettings, suite: Path, variant: str) -> list[str]:
    """PA-GRPO (the toy judge gives the perception reward) or plain GRPO. The length
    rewards are off in both: the toy traces are about 40 tokens, far below the paper's
    length windows (128-320 and 320-512 tokens), so they could never pay out."""
    train = suite / "train"
    design = ["--judge", "toy"] if variant == "pa-grpo" else ["--process-agnostic"]
    return train_command(
        "grpo", "--model", str(settings.output / "sft"), "--data", str(train / "train.json"),
        "--media-root", str(train), "--output", str(settings.output / variant),
        *media_options(settings), *design, "--no-length-reward",
        "--max-steps", str(settings.rl_steps), "--lr", str(settings.rl_lr),
        "--batch-size", str(settings.rl_batch_size),
        "--num-generations", str(settings.rl_generations),
        "--max-completion-length", str(settings.rl_max_completion_length),
        "--temperature", str(settings.rl_temperature), "--beta", "0",
        "--seed", str(settings.seed), "--logging-steps", "1", *quiet_training_options())


def test_eval_command(settings: ToySettings, suite: Path, run: str) -> list[str]:
    """p2r-eval on a training run folder: each of its models scored into ``RUN/eval/``."""
    return eval_command(
        "--model", str(settings.output / run), "--tasks", "toy", "--data-root", str(suite),
        *media_options(settings), "--max-new-tokens", str(settings.eval_max_new_tokens),
        "--batch-size", "8", "--judge", "toy", "--attribute-errors", "--quiet")


def final_evaluation(run: Path) -> Path:
    """The evaluation of a run's last checkpoint (``RUN/eval/checkpoint-<step>``)."""
    evaluated = sorted(run.glob("eval/checkpoint-*/results.json"),
                       key=lambda path: int(path.parent.name.rsplit("-", 1)[1]))
    if not evaluated:
        raise RecipeError(f"{run}: no evaluated checkpoint under {run / 'eval'}")
    return evaluated[-1].parent


# -- running steps ------------------------------------------------------------------------------
class RecipeLog:
    """``OUTPUT/recipe.json``: settings, and per step its commands, wall time and state."""

    def __init__(self, settings: ToySettings) -> None:
        self.path = settings.output / RECIPE_FILE
        self.data: dict[str, Any] = (json.loads(self.path.read_text())
                                     if self.path.is_file() else {"steps": {}})
        before, now = self.data.get("settings"), settings.as_dict()
        if before is not None and before != now:
            changed = sorted(key for key in now if before.get(key) != now[key])
            raise RecipeError(f"{settings.output} holds a recipe run with other settings "
                              f"({', '.join(changed)}); choose another --output")
        self.data["settings"] = now

    def done(self, step: str) -> bool:
        return self.data["steps"].get(step, {}).get("state") == "done"

    def record(self, step: str, commands: list[list[str]], seconds: float, **extra: Any) -> None:
        self.data["steps"][step] = {"state": "done", "wall_s": round(seconds, 1),
                                    "commands": [" ".join(c) for c in commands], **extra}
        self.data["total_wall_s"] = round(sum(s["wall_s"] for s in self.data["steps"].values()), 1)
        self.save()

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=1) + "\n")


def run_parallel(commands: dict[str, list[str]], logs: Path, threads: int) -> None:
    """Run the commands at once, each logging to ``logs/<name>.log``; raise naming each
    command that failed (after all have ended)."""
    logs.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM":
                   "false", "P2R_HUB": "0"}
    running = {}
    for name, command in commands.items():
        log = open(logs / f"{name}.log", "w", encoding="utf-8")  # closed below
        running[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                          env=environment), log)
    failed = []
    for name, (process, log) in running.items():
        if process.wait() != 0:
            failed.append(f"{name} (exit {process.returncode}; log {logs / f'{name}.log'})")
        log.close()
    if failed:
        raise RecipeError("step failed: " + ", ".join(failed))


def timed_step(log: RecipeLog, step: str, commands: dict[str, list[str]],
               settings: ToySettings) -> None:
    if log.done(step):
        print(f"[{step}] done before, skipped")
        return
    print(f"[{step}] " + "\n    ".join(" ".join(c) for c in commands.values()), flush=True)
    start = time.monotonic()
    run_parallel(commands, settings.output / "logs", settings.threads)
    log.record(step, list(commands.values()), time.monotonic() - start)
    print(f"[{step}] {time.monotonic() - start:.0f} s", flush=True)


def check_annotation(output: Path, suite: Path) -> dict[str, int]:
    """The annotate step must have dropped exactly the teacher's flawed traces."""
    flaws = json.loads((suite / "train" / "teacher_flaws.json").read_text())
    dropped = {json.loads(line)["problem_id"]: json.loads(line)["step"]
               for line in (output / "cot" / "dropped.jsonl").read_text().splitlines() if line}
    expected = {pid: "judge" if flaw == "missing_fact" else "verify" for pid, flaw in flaws.items()}
    if dropped != expected:
        wrong = sorted(set(dropped.items()) ^ set(expected.items()))[:5]
        raise RecipeError(f"annotate did not drop exactly the flawed traces; first differences "
                          f"(id, step): {wrong}")
    kept = len((output / "cot" / "cot.jsonl").read_text().splitlines())
    return {"kept": kept, "dropped_by_verification": sum(s == "verify" for s in dropped.values()),
            "dropped_by_judge": sum(s == "judge" for s in dropped.values())}


def run_toy_recipe(settings: ToySettings) -> Path:
    """Run (or finish) the recipe into ``settings.output``; returns the leaderboard path."""
    from p2r_eval.benchmarks.toy_suite import prepare_toy_suite
    from p2r_eval.models.demo import ensure_demo_model

    settings.output.mkdir(parents=True, exist_ok=True)
    log = RecipeLog(settings)  # refuses a folder made with other settings
    start = time.monotonic()
    suite = prepare_toy_suite(settings.sizes, settings.seed)
    base_model = ensure_demo_model()
    if not log.done("data"):
        log.record("data", [], time.monotonic() - start, suite=str(suite),
                   base_model=str(base_model))
    timed_step(log, "annotate", {"annotate": annotate_command(settings, suite)}, settings)
    log.data["steps"]["annotate"]["outcome"] = check_annotation(settings.output, suite)
    log.save()
    timed_step(log, "sft", {"sft": sft_command(settings, suite, base_model)}, settings)
    timed_step(log, "rl", {variant: rl_command(settings, suite, variant)
                           for variant in RL_VARIANTS}, settings)
    timed_step(log, "eval", {f"eval-{run}": test_eval_command(settings, suite, run)
                             for run in ("sft", *RL_VARIANTS)}, settings)
    return write_toy_leaderboard(settings.output)


def write_toy_leaderboard(output: Path) -> Path:
    """``OUTPUT/leaderboards/toy.md``: the table with CIs, then each RL row paired against
    SFT-only on the same test items."""
    from p2r_eval.report.compare import compare_runs, render_comparison
    from p2r_eval.report.leaderboard import write_leaderboards

    runs = [final_evaluation(output / run) for run in ("sft", *RL_VARIANTS)]
    names = [SFT_ROW, *RL_VARIANTS.values()]
    table = write_leaderboards(runs, output / "leaderboards", "toy", names)[0]
    sections = [table.read_text(encoding="utf-8").rstrip("\n")]
    for run, name in zip(runs[1:], names[1:], strict=True):
        comparison = render_comparison(run, runs[0], compare_runs(run, runs[0], ["toy"]))
        sections.append(f"## Paired test: {name} (A) against {SFT_ROW} (B)\n\n{comparison}")
    table.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    return table


# -- command line -------------------------------------------------------------------------------
def add_recipe_subcommand(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "recipe", help="the whole pipeline at toy scale: data, annotate, SFT, RL, eval, table",
        description=__doc__.split("\n\n", 1)[1].split("Every step")[0],
        epilog="example:\n  p2r-train recipe toy --output runs/toy     (make toy)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=("toy",), help="the recipe (toy)")
    parser.add_argument("--output", type=Path, default=Path("runs/toy"),
                        help="run folder (default runs/toy); running again resumes")
    defaults = ToySettings(output=Path())
    for option in ("train_items", "validation_items", "test_items", "seed", "sft_epochs",
                   "sft_lr", "rl_steps", "rl_lr", "rl_generations", "eval_max_new_tokens",
                   "threads"):
        value = getattr(defaults, option)
        parser.add_argument(f"--{option.replace('_', '-')}", type=type(value), default=value,
                            help=f"default {value}")
    parser.set_defaults(func=run_recipe_command)


def run_recipe_command(args: argparse.Namespace) -> int:
    fields = {name: getattr(args, name) for name in ToySettings.__dataclass_fields__
              if hasattr(args, name) and name != "extra"}
    try:
        table = run_toy_recipe(ToySettings(**fields))
    except RecipeError as error:
        print(f"p2r-train recipe: {error}", file=sys.stderr)
        return 1
    print(table.read_text(encoding="utf-8"))
    print(f"leaderboard: {table}")
    return 0

