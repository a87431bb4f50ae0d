"""Collecting the tests stays quick: the libraries only some tests need (TRL, torchvision,
the Anthropic SDK, SciPy) are imported inside those tests, never by a test module or the
conftest at import time. Run in a fresh interpreter, with ``sys.modules`` read afterwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
IMPORTED_WHERE_USED = ("trl", "torchvision", "anthropic")

CHECK = """\
import sys
import pytest
status = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", {tests!r}])
print("STATUS", int(status), "IMPORTED", ",".join(
    name for name in {names!r} if name in sys.modules) or "none")
"""


@pytest.mark.slow
def test_collection_imports_none_of_the_libraries_imported_where_used():
    code = CHECK.format(tests=str(TESTS), names=IMPORTED_WHERE_USED)
    finished = subprocess.run([sys.executable, "-c", code], cwd=TESTS.parent,
                              capture_output=True, text=True, timeout=600)
    report = [line for line in finished.stdout.splitlines() if line.startswith("STATUS ")]
    assert report, finished.stdout[-2000:] + finished.stderr[-2000:]
    _, status, _, imported = report[-1].split()
    assert status == "0"
    assert imported == "none"
