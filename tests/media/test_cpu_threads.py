"""With decode workers and a model on the CPU, torch gets the cores the workers leave free."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from p2r_eval.cli.evaluate import torch_threads_beside


@pytest.mark.parametrize(("workers", "cores", "threads"),
                         [(1, 2, 1), (1, 16, 15), (4, 16, 12), (4, 2, 1), (2, 2, 1)])
def test_torch_gets_the_cores_the_decode_workers_leave(workers, cores, threads):
    assert torch_threads_beside(workers, cores) == threads


RUN = """\
import sys
import torch
from p2r_eval.cli.main import main
before = torch.get_num_threads()
status = main(["--model", "demo", "--tasks", "mvbench", "--limit", "2", "--frames", "4",
               "--max-new-tokens", "2", "--device", "cpu", "--decode-workers", sys.argv[1],
               "--quiet", "--output", sys.argv[2]])
print("RESULT", status, before, torch.get_num_threads())
"""


def threads_after_a_run(workers: int, output: Path) -> tuple[int, int, int]:
    """Exit status, torch threads before and after a demo run with ``workers``."""
    done = subprocess.run([sys.executable, "-c", RUN, str(workers), str(output)],
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stdout + done.stderr
    status, before, after = map(int, lines[-1].split()[1:])
    return status, before, after


@pytest.mark.slow
def test_a_cpu_run_with_a_decode_worker_leaves_it_a_core(tmp_path):
    cores = len(os.sched_getaffinity(0))
    status, before, after = threads_after_a_run(1, tmp_path / "with-worker")
    assert status == 0
    assert after == max(1, cores - 1)
    status, before, after = threads_after_a_run(0, tmp_path / "inline")
    assert status == 0
    assert after == before  # decoding inline: torch keeps its own choice
