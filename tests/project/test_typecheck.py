"""mypy, with the project's settings, checks every module of p2r_eval and training (the latter
as p2r_train, its import name) and every perf/ script, and reports no error."""

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
def test_mypy_checks_both_packages_and_the_perf_scripts_and_finds_no_error():
    checked = subprocess.run([sys.executable, str(REPO / "scripts" / "typecheck.py")],
                             cwd=REPO, capture_output=True, text=True, timeout=900)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked_counts = [int(count) for count in
                      re.findall(r"Success: no issues found in (\d+) source files", checked.stdout)]
    assert len(checked_counts) == 2, checked.stdout  # the packages, then the perf/ scripts
    assert checked_counts[0] >= python_files("p2r_eval", "training")
    assert checked_counts[1] >= len(list((REPO / "perf").glob("*.py")))
