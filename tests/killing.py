"""Killing a real process at a chosen point: the interruption tests' one way to do it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path


def run_and_kill(
    command: list[str],
    reached: Callable[[], bool],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 180.0,
    poll_s: float = 0.01,
) -> None:
    """Start ``command``; SIGKILL it as soon as ``reached()`` is true. Fails if the process
    ended on its own first, or the point was not reached within ``timeout_s``."""
    process = subprocess.Popen(command, env=None if env is None else dict(env), cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    try:
        while not reached():
            assert process.poll() is None, "the run finished before the kill point"
            assert time.monotonic() < deadline, "the kill point was never reached"
            time.sleep(poll_s)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
