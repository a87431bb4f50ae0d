"""Secrets: with canary API keys in ANTHROPIC_API_KEY and OPENAI_API_KEY, nothing p2r writes
or prints contains them: no file under the run, cache and judge-cache folders (results.json,
samples, analysis, leaderboards, annotation steps and reports, the SQLite reply cache and its
journal), no stdout or stderr line (progress bars included), no log record, no exception text.

The runs are real ``p2r-eval`` and ``p2r-train annotate`` processes with the SDKs' own debug
logging switched on (ANTHROPIC_LOG / OPENAI_LOG = debug), against local servers: the fake
Messages / chat API of tests/judge_server.py with transient faults, a server that rejects the
key, and a hostile proxy that echoes every request header (the key included) back in its error
bodies, so that the SDKs' exception messages do carry the key and p2r must redact it.
(tests/judge/test_judge.py::test_the_api_key_appears_in_nothing_the_judge_writes proves the same for
the judge module on its own.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from judge_server import FakeJudgeServer

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
ANTHROPIC_CANARY = "sk-ant-canary-3f9c1e7a5b2d4068"
OPENAI_CANARY = "sk-openai-canary-8e2b6d0f4a1c3957"
CANARIES = (ANTHROPIC_CANARY, OPENAI_CANARY)


class EchoingProxy:
    """Answers the model listing (so the judge starts), then every model call with a 500
    whose body repeats the request's headers: the API key comes back in the SDK's error."""

    def __init__(self) -> None:
        self.seen_keys: set[str] = set()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _send(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _key(self) -> str:
                return self.headers.get("x-api-key") or self.headers.get(
                    "Authorization", "").removeprefix("Bearer ")

            def do_GET(self) -> None:
                proxy.seen_keys.add(self._key())
                model = {"id": "fake-judge-1", "type": "model", "object": "model",
                         "display_name": "f", "created_at": "2025-01-01T00:00:00Z",
                         "created": 0, "owned_by": "x"}
                self._send(200, {"object": "list", "data": [model], "has_more": False,
                                 "first_id": "fake-judge-1", "last_id": "fake-judge-1"})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                proxy.seen_keys.add(self._key())
                echoed = {name: value for name, value in self.headers.items()}
                self._send(500, {"type": "error", "error": {
                    "type": "api_error", "message": f"upstream failed; request was {echoed}"}})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> EchoingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, Path]:
    """Data (MMVU records graded by the judge under --protocol official), replayed model
    outputs, annotation records with a replayed teacher, and the folders p2r writes."""
    from p2r_eval.media.synthetic_media import write_video

    root = tmp_path / "data"
    root.mkdir()
    records = [{"problem_id": i, "problem": f"Which quantity is constant in clip {i}?",
                "data_type": "video", "problem_type": "multiple choice",
                "options": ["A. size", "B. speed", "C. colour"],
                "solution": f"<answer>{'ABC'[i % 3]}</answer>",
                "path": f"./Evaluation/MMVU/videos/Mechanics/{i}.mp4"} for i in range(1, 7)]
    (root / "eval_mmvu.json").write_text(json.dumps(records))
    outputs = [{"task": "mmvu", "id": r["problem_id"],
                "output": f"<observation>a {['size', 'speed', 'colour'][r['problem_id'] % 3]} "
                          f"marker</observation><think>t</think><answer>A</answer>"}
               for r in records]
    (tmp_path / "replay.jsonl").write_text("\n".join(map(json.dumps, outputs)) + "\n")
    media = tmp_path / "media"
    write_video(media / "clip.mp4", seconds=1, fps=8)
    vqa = [{"problem_id": f"p{i}", "problem": "What rolls?", "data_type": "video",
            "problem_type": "multiple choice", "options": ["A. a red ball", "B. a cube"],
            "solution": "<answer>A</answer>", "path": "./clip.mp4"} for i in range(4)]
    (tmp_path / "records.json").write_text(json.dumps(vqa))
    teacher = [{"task": "annotate", "id": f"p{i}",
                "output": "<observation>A red ball rolls.</observation><think>Red.</think>"
                          "<answer>A</answer>"} for i in range(4)]
    (tmp_path / "teacher.jsonl").write_text("\n".join(map(json.dumps, teacher)) + "\n")
    return {"base": tmp_path, "root": root, "media": media, "cache": tmp_path / "p2r-cache",
            "judge_cache": tmp_path / "judge-cache"}


def run(command: list[str], workspace: dict[str, Path]) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANTHROPIC_API_KEY": ANTHROPIC_CANARY,
           "OPENAI_API_KEY": OPENAI_CANARY, "ANTHROPIC_LOG": "debug", "OPENAI_LOG": "debug",
           "P2R_CACHE": str(workspace["cache"]), "P2R_HUB": "0",
           "PYTHONPATH": str(REPO_ROOT)}
    env.pop("ANTHROPIC_BASE_URL", None)
    env.pop("OPENAI_BASE_URL", None)
    return subprocess.run([sys.executable, *command], env=env, cwd=workspace["base"],
                          capture_output=True, text=True, timeout=300)


def eval_command(workspace: dict[str, Path], name: str, backend: str, url: str,
                 *extra: str) -> list[str]:
    return ["-m", "p2r_eval.cli", "--model", f"replay:{workspace['base'] / 'replay.jsonl'}",
            "--tasks", "mmvu", "--data-root", str(workspace["root"]), "--protocol", "official",
            "--judge", backend, "--judge-base-url", url, "--judge-model", "fake-judge-1",
            "--judge-cache", str(workspace["judge_cache"] / name), "--judge-timeout", "5",
            "--output", str(workspace["base"] / "runs" / name), *extra]


def assert_no_canary(workspace: dict[str, Path], printed: list[str]) -> int:
    """Every file under the workspace but the inputs, and every captured text, checked;
    returns how many files were checked."""
    inputs = {"replay.jsonl", "teacher.jsonl", "records.json", "eval_mmvu.json"}
    checked = 0
    for path in workspace["base"].rglob("*"):
        if path.is_file() and path.name not in inputs:
            data = path.read_bytes()
            for canary in CANARIES:
                assert canary.encode() not in data, f"{canary} in {path}"
            checked += 1
    for text in printed:
        for canary in CANARIES:
            assert canary not in text, f"{canary} printed: ...{text[text.find(canary) - 200:]}"
    return checked


def test_no_output_log_or_error_contains_an_api_key(workspace):
    printed: list[str] = []
    proofs: list[bool] = []

    def record(result: subprocess.CompletedProcess, expected_code: int) -> None:
        printed.extend([result.stdout, result.stderr])
        assert result.returncode == expected_code, result.stderr[-2000:]

    with FakeJudgeServer(api_key=ANTHROPIC_CANARY, faults=["429", "500", "ok", "529"]) as server:
        # a working judge with retries, error attribution, progress bars on
        record(run(eval_command(workspace, "anthropic", "anthropic", server.url,
                                "--attribute-errors"), workspace), 0)
        proofs.append(server.model_calls() > 0)
    with FakeJudgeServer(api_key=ANTHROPIC_CANARY, faults=["529"] * 20) as server:
        # the judge gives up: exception texts go into samples, results and stderr
        record(run(eval_command(workspace, "gave-up", "anthropic", server.url, "--quiet",
                                "--judge-max-retries", "1"), workspace), 3)
    with FakeJudgeServer(api_key="another-key") as server:
        # the key is rejected before any work
        result = run(eval_command(workspace, "rejected", "anthropic", server.url, "--quiet"),
                     workspace)
        record(result, 2)
        assert "rejected ANTHROPIC_API_KEY" in result.stderr
    for backend in ("anthropic", "openai"):
        with EchoingProxy() as proxy:
            url = proxy.url if backend == "anthropic" else proxy.url + "/v1"
            result = run(eval_command(workspace, f"echo-{backend}", backend, url, "--quiet",
                                      "--judge-max-retries", "0"), workspace)
            record(result, 3)
            assert "[redacted]" in result.stderr  # the key came back and was redacted
            proofs.append(bool(proxy.seen_keys & set(CANARIES)))
    with FakeJudgeServer(api_key=ANTHROPIC_CANARY, faults=["500", "ok", "500", "500"]) as server:
        # annotation: retries, then a judge error on one item
        records_file = str(workspace["base"] / "records.json")
        record(run(["-m", "p2r_train.cot.annotate", "--input", records_file,
                    "--media-root", str(workspace["media"]), "--output",
                    str(workspace["base"] / "annotate"), "--teacher",
                    f"replay:{workspace['base'] / 'teacher.jsonl'}", "--frames", "4",
                    "--judge", "anthropic", "--judge-base-url", server.url, "--judge-model",
                    "fake-judge-1", "--judge-max-retries", "1", "--judge-concurrency", "1"],
                   workspace), 0)
    assert all(proofs), "the canaries were not actually sent"
    samples = (workspace["base"] / "runs" / "echo-anthropic" / "samples" / "mmvu.jsonl")
    assert "[redacted]" in samples.read_text()  # the redacted error is what the sample keeps
    checked = assert_no_canary(workspace, printed)
    assert checked > 20 and any(workspace["judge_cache"].glob("*/judge_cache.sqlite3*"))


URL_CANARY = "url-canary-5d1e9b3c7a"


@pytest.mark.parametrize("backend", ["anthropic", "openai"])
def test_a_key_inside_the_judge_base_url_is_written_nowhere(backend, workspace):
    """``http://user:KEY@host/v1``: the SDK uses the key (basic auth), results record the URL
    with the key redacted, and no file or printed line holds it."""
    printed: list[str] = []
    with FakeJudgeServer(api_key=None) as server:
        base = server.url if backend == "anthropic" else server.openai_base_url
        url = base.replace("http://", f"http://user:{URL_CANARY}@")
        result = run(eval_command(workspace, f"url-{backend}", backend, url, "--quiet"),
                     workspace)
        printed += [result.stdout, result.stderr]
        assert result.returncode == 0, result.stderr[-2000:]
        assert server.model_calls() > 0
    with EchoingProxy() as proxy:
        base = proxy.url if backend == "anthropic" else proxy.url + "/v1"
        url = base.replace("http://", f"http://user:{URL_CANARY}@")
        result = run(eval_command(workspace, f"url-echo-{backend}", backend, url, "--quiet",
                                  "--judge-max-retries", "0"), workspace)
        printed += [result.stdout, result.stderr]
        assert result.returncode == 3, result.stderr[-2000:]
    results = json.loads((workspace["base"] / "runs" / f"url-{backend}" / "results.json")
                         .read_text())
    assert results["judge"]["config"]["base_url"].startswith("http://user:[redacted]@127.0.0.1:")
    for path in workspace["base"].rglob("*"):
        if path.is_file():
            assert URL_CANARY.encode() not in path.read_bytes(), path
    for text in printed:
        assert URL_CANARY not in text
