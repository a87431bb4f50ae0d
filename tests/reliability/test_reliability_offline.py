"""No network: a benchmark missing under --data-root, or a model given as a hub id, needs the
Hugging Face hub. Where the hub does not answer, p2r says so within seconds, naming what it
wanted and what to do (P2R_HUB=0, HF_HUB_OFFLINE=1), instead of retrying for minutes.

The hub is played by a "black hole" on 127.0.0.1 (HF_ENDPOINT): it completes TCP handshakes
and never answers, the way a firewall that drops packets behaves; and by a closed port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 300  # the unfixed commands retried for minutes; none may get this far


@pytest.fixture(params=["black-hole", "closed-port"])
def unreachable_hub(request: pytest.FixtureRequest) -> Iterator[str]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if request.param == "black-hole":
        listener.listen(64)  # handshakes complete in the kernel; nothing is ever read or sent
    else:
        listener.close()  # nothing listens: connections are refused
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listener.close()


def run_offline(hub: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if key not in ("P2R_HUB", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                          "TRANSFORMERS_OFFLINE")}
    env.update({"HF_ENDPOINT": hub, "HF_HOME": str(cwd / "hf-home"),
                "PYTHONPATH": str(REPO_ROOT)})
    return subprocess.run([sys.executable, "-m", "p2r_eval.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=HANG_GUARD_S)


def assert_says_what_to_do(text: str, hub: str) -> None:
    assert f"cannot reach the Hugging Face hub at {hub}" in text, text
    assert "P2R_HUB=0" in text and "HF_HUB_OFFLINE=1" in text, text


def test_check_data_names_the_unreachable_hub_and_what_to_do(unreachable_hub, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_offline(unreachable_hub, "check-data", "--tasks", "mvbench", "--data-root",
                         str(tmp_path / "empty"), cwd=tmp_path)
    assert result.returncode == 1
    assert "mvbench: ERROR" in result.stdout
    assert_says_what_to_do(result.stdout, unreachable_hub)


def test_a_benchmark_missing_under_the_data_root_stops_the_run_naming_the_hub(unreachable_hub,
                                                                             tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "replay.jsonl").write_text("")
    result = run_offline(unreachable_hub, "--model", f"replay:{tmp_path / 'replay.jsonl'}",
                         "--tasks", "mvbench", "--data-root", str(tmp_path / "empty"),
                         "--quiet", "--output", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_says_what_to_do(result.stderr, unreachable_hub)


def test_a_hub_model_id_stops_the_run_naming_the_hub(unreachable_hub, tmp_path):
    result = run_offline(unreachable_hub, "--model", "some-org/a-typo-d-model", "--tasks",
                         "mvbench", "--limit", "1", "--quiet", "--output",
                         str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_says_what_to_do(result.stderr, unreachable_hub)
    assert "some-org/a-typo-d-model" in result.stderr
