"""mypy, with the project's settings, checks every module of p2r_eval and training (the latter
as p2r_train, its import name) and reports no error."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytest.importorskip("mypy", reason="mypy is not installed (dev extra)")


def python_files(*folders: str) -> int:
    return sum(1 for folder in folders for _ in (REPO / folder).rglob("*.py"))


@pytest.mark.slow
def test_mypy_checks_both_packages_and_finds_no_error():
    checked = subprocess.run([sys.executable, str(REPO / "scripts" / "typecheck.py")],
                             cwd=REPO, capture_output=True, text=True, timeout=900)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    success = re.search(r"Success: no issues found in (\d+) source files", checked.stdout)
    assert success, checked.stdout
    assert int(success.group(1)) >= python_files("p2r_eval", "training")
