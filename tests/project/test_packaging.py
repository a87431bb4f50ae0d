"""The built wheel works anywhere: installed into a fresh virtual environment and run from
an unrelated directory, with the repository's folders under the project's own names.

The wheel is installed with ``--no-deps``; its dependencies come from this test run's own
environment through a ``.pth`` file (so the test needs no downloads and stays fast), which
adds that environment's site-packages to the path without running its ``.pth`` files: the
editable install of p2r in it is therefore not visible from the fresh environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALLED_NAMES = {"p2r_eval": "p2r_eval", "training": "p2r_train", "tasks": "p2r_tasks",
                   "leaderboards": "p2r_leaderboards", "lmms_tasks": "p2r_lmms_tasks"}
SHIM = "p2r_torchvision_cpu_shim"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist),
                    str(REPO)], check=True, capture_output=True, text=True)
    (wheel,) = dist.glob("p2r-*.whl")
    (sdist,) = dist.glob("p2r-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def fresh_venv(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(built["wheel"])], check=True)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True)
    dependencies = Path(sysconfig.get_paths()["purelib"])
    lines = [str(dependencies)]
    if (dependencies / f"{SHIM}.py").exists():  # the CPU torchvision workaround, if in use
        lines.append(f"import {SHIM}; {SHIM}.install()")
    (Path(site.stdout.strip()) / "p2r_test_dependencies.pth").write_text("\n".join(lines) + "\n")
    return venv


def run_in(venv: Path, workdir: Path, *command: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "P2R_CACHE": str(workdir / "cache"), "P2R_HUB": "0",
                   "PYTHONPATH": ""}
    program = str(venv / "bin" / command[0]) if not command[0].startswith("/") else command[0]
    return subprocess.run([program, *command[1:]], cwd=workdir, env=environment,
                          capture_output=True, text=True, timeout=600)


def test_the_wheel_holds_every_file_of_the_packaged_folders(built: dict[str, Path]) -> None:
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", *INSTALLED_NAMES],
                            check=True, capture_output=True, text=True).stdout.split()
    expected = set()
    for path in listed:
        folder, _, rest = path.partition("/")
        expected.add(f"{INSTALLED_NAMES[folder]}/{rest}")
    with zipfile.ZipFile(built["wheel"]) as wheel:
        contents = set(wheel.namelist())
    assert expected - contents == set()
    top_level = {name.split("/")[0] for name in contents if not name.startswith("p2r-")}
    assert top_level == set(INSTALLED_NAMES.values())


def test_the_sdist_builds_the_same_packages(built: dict[str, Path]) -> None:
    listed = subprocess.run(["tar", "-tzf", str(built["sdist"])], check=True,
                            capture_output=True, text=True).stdout.split()
    assert any(name.endswith("/tasks/mvbench.yaml") for name in listed)
    assert any(name.endswith("/training/rl/pa_grpo.py") for name in listed)


def test_commands_run_from_an_unrelated_directory(fresh_venv: Path, tmp_path: Path) -> None:
    version = run_in(fresh_venv, tmp_path, "p2r-eval", "--version")
    assert version.returncode == 0 and version.stdout.startswith("p2r 0.")
    replay = tmp_path / "outputs.jsonl"
    replay.write_text(json.dumps({"task": "mvbench", "id": "anything", "output": "A"}) + "\n")
    evaluation = run_in(fresh_venv, tmp_path, "p2r-eval", "--model", f"replay:{replay}",
                        "--tasks", "mvbench", "--output", "run", "--quiet")
    assert evaluation.returncode in (0, 1), evaluation.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["tasks"]["mvbench"]["n"] > 0
    assert (tmp_path / "run" / "leaderboards" / "main.md").exists()
    table = run_in(fresh_venv, tmp_path, "p2r-eval", "leaderboard", "run", "--out", "tables")
    assert table.returncode == 0, table.stderr
    assert "VideoP2R" in (tmp_path / "tables" / "main.md").read_text()
    for command in (("p2r-eval", "models"), ("p2r-eval", "check-data", "--tasks", "mvbench"),
                    ("p2r-train", "--help"), ("p2r-train", "sft", "--help"),
                    ("p2r-train", "grpo", "--help"), ("p2r-train", "annotate", "--help")):
        finished = run_in(fresh_venv, tmp_path, *command)
        assert finished.returncode == 0, (command, finished.stderr)


def test_generic_names_do_not_resolve_to_p2r(fresh_venv: Path, tmp_path: Path) -> None:
    probe = ("import importlib.util, p2r_eval, p2r_train; "
             "print(p2r_eval.__file__); print(p2r_train.__file__); "
             "print(importlib.util.find_spec('training')); "
             "print(importlib.util.find_spec('tasks'))")
    finished = run_in(fresh_venv, tmp_path, "python", "-c", probe)
    assert finished.returncode == 0, finished.stderr
    eval_file, train_file, training, tasks = finished.stdout.splitlines()
    assert eval_file.startswith(str(fresh_venv)) and train_file.startswith(str(fresh_venv))
    assert (training, tasks) == ("None", "None")
