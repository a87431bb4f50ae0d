"""Commands that need no model import no torch (nor transformers): each runs in a fresh
interpreter, and ``sys.modules`` is checked once it has finished.

torch and transformers are most of what an evaluation pays before its first item (seconds on
a small machine); a replay run and the subcommands that only read run folders, annotation
files or the paper's tables must not pay it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from p2r_eval.benchmarks.registry import load_task
from p2r_eval.cli.main import subcommand_registrars

HEAVY_MODULES = ("torch", "transformers")

CHECK = """\
import sys
from p2r_eval.cli.main import main
status = main({argv!r})
heavy = [name for name in {heavy!r} if name in sys.modules]
print("EXIT", status, "HEAVY", ",".join(heavy) or "none")
"""


def run_cli_in_fresh_interpreter(argv: list[str], cwd: Path) -> tuple[int, list[str]]:
    """The exit status of ``p2r-eval ARGV`` and the heavy modules it imported."""
    code = CHECK.format(argv=argv, heavy=HEAVY_MODULES)
    finished = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                              text=True, timeout=300)
    report = [line for line in finished.stdout.splitlines() if line.startswith("EXIT ")]
    assert report, f"p2r-eval {argv} did not finish:\n{finished.stdout}\n{finished.stderr}"
    _, status, _, heavy = report[-1].split()
    return int(status), [] if heavy == "none" else heavy.split(",")


@pytest.fixture(scope="module")
def replay_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished replay run over the demo suite's MVBench items (made without torch: the
    test of the replay command below checks that)."""
    folder = tmp_path_factory.mktemp("startup")
    items = load_task("mvbench", None).items
    lines = [json.dumps({"task": "mvbench", "id": item.id,
                         "output": f"<think>t</think><answer>{item.answer}</answer>"})
             for item in items]
    (folder / "outputs.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def replay_argv(folder: Path) -> list[str]:
    return ["--model", f"replay:{folder / 'outputs.jsonl'}", "--tasks", "mvbench",
            "--output", str(folder / "run"), "--quiet"]


def test_a_replay_run_imports_no_torch(replay_run: Path) -> None:
    status, heavy = run_cli_in_fresh_interpreter(replay_argv(replay_run), replay_run)
    assert status == 0
    assert heavy == []
    results = json.loads((replay_run / "run" / "results.json").read_text())
    assert results["tasks"]["mvbench"]["score"] == 100.0  # the run really scored its items


SUBCOMMANDS = {
    "leaderboard": lambda run: ["leaderboard", str(run), "--out", str(run.parent / "lb")],
    "compare": lambda run: ["compare", str(run), str(run)],
    "check-data": lambda run: ["check-data", "--tasks", "mvbench"],
    "models": lambda run: ["models"],
    "view": lambda run: ["view", str(run), "--output", str(run.parent / "site")],
}


@pytest.mark.parametrize("name", SUBCOMMANDS)
@pytest.mark.slow
def test_subcommands_without_a_model_import_no_torch(name: str, replay_run: Path) -> None:
    if name not in subcommand_registrars():
        pytest.skip(f"p2r-eval has no {name} subcommand in this tree")
    run = replay_run / "run"
    if not (run / "results.json").is_file():
        status, _ = run_cli_in_fresh_interpreter(replay_argv(replay_run), replay_run)
        assert status == 0
    status, heavy = run_cli_in_fresh_interpreter(SUBCOMMANDS[name](run), replay_run)
    assert status == 0
    assert heavy == []
