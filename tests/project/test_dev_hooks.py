"""The repository's pre-commit hook, run by pre-commit itself in a scratch repository: it
rejects what ruff (with the project's settings, RUF100 included) rejects and lets a clean
file through, without downloading anything."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"

pytestmark = pytest.mark.skipif(not PRE_COMMIT.exists(), reason="pre-commit is not installed")


def run_pre_commit(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PRE_COMMIT_HOME": str(home)}
    return subprocess.run([str(PRE_COMMIT), *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def scratch_repo(tmp_path: Path) -> Path:
    """A git repository with this repository's hook config, ruff settings and environment."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    shutil.copy(REPO / ".pre-commit-config.yaml", repo)
    shutil.copy(REPO / "pyproject.toml", repo)
    (repo / ".venv").symlink_to(Path(sys.executable).parent.parent)
    return repo


def test_the_config_is_valid_for_pre_commit(tmp_path):
    checked = run_pre_commit(["validate-config", str(REPO / ".pre-commit-config.yaml")],
                             REPO, tmp_path / "home")
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(("source", "passes", "message"), [
    ("import os\n", False, "F401"),
    ("value = 1  # noqa: ANN001\n", False, "RUF100"),
    ("value = 1\n", True, ""),
])
def test_the_hook_runs_ruff_with_the_projects_settings(scratch_repo, tmp_path, source, passes,
                                                        message):
    (scratch_repo / "module.py").write_text(source)
    ran = run_pre_commit(["run", "ruff", "--files", "module.py"], scratch_repo,
                         tmp_path / "home")
    assert (ran.returncode == 0) is passes, ran.stdout + ran.stderr
    assert message in ran.stdout
