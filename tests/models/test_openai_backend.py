"""The openai backend against a real ``p2r-eval serve`` (the demo model, FastAPI + uvicorn on
127.0.0.1): the same outputs as the hf backend item for item, replicas that die mid-run,
servers answering 429 and 500, the response cache, and the request body checked against
vLLM's schema for video input (tests/vllm_openai_schema.py)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import typing
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from p2r_eval.benchmarks.registry import paper_task_names
from p2r_eval.cli.main import main
from p2r_eval.core.request import Request
from p2r_eval.core.retry import RetryPolicy
from p2r_eval.models.base import DecodingSettings
from p2r_eval.models.endpoint import EndpointSettings
from p2r_eval.models.openai_backend import OpenAIBackend, Transport, request_body

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from openai_proxy import FaultyProxy
from vllm_openai_schema import (
    FRAME_LIST_KEYS,
    FRAME_LIST_MEDIA_TYPE,
    ChatCompletionRequest,
)

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

TOKENS = "8"
RUN_ARGS = ["--max-new-tokens", TOKENS, "--quiet"]
SOME_TASKS = ("mvbench", "vsibench")
PAPER_TASKS = paper_task_names()
"""The tasks of the fault and failover runs (the first run covers the whole demo suite)."""
P2R_EVAL = str(Path(sys.executable).with_name("p2r-eval"))


class Server:
    """One ``p2r-eval serve --model demo`` process on a free port."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [P2R_EVAL, "serve", "--model", "demo", "--port", "0", "--max-new-tokens", TOKENS],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.process.stdout is not None
        said = ""
        while not (match := re.search(r"on (http://127\.0\.0\.1:\d+/v1)", said)):
            line = self.process.stdout.readline()
            assert line, f"p2r-eval serve did not start: {said}"
            said += line
        self.base_url = match.group(1)
        threading.Thread(target=self.process.stdout.read, daemon=True).start()  # keep it drained

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    started = Server()
    yield started
    started.kill()


@pytest.fixture(scope="module")
def hf_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, str]]]:
    """The hf backend's outputs over the demo suite (greedy), the reference."""
    output = tmp_path_factory.mktemp("hf")
    assert main(["--model", "demo", "--tasks", "all", *RUN_ARGS, "--output", str(output)]) == 0
    return outputs_of(output)


def outputs_of(run: Path, tasks: tuple[str, ...] = PAPER_TASKS) -> dict[str, list[tuple[str, str]]]:
    """Per task, (id, output) of every sample line, in file order."""
    runs: dict[str, list[tuple[str, str]]] = {}
    for task in tasks:
        lines = (run / "samples" / f"{task}.jsonl").read_text(encoding="utf-8").splitlines()
        runs[task] = [(json.loads(line)["id"], json.loads(line)["output"]) for line in lines]
    return runs


def served_args(output: Path, *urls: str, cache: Path | None = None,
                tasks: tuple[str, ...] = PAPER_TASKS) -> list[str]:
    return ["--backend", "openai", "--model", "demo", "--base-url", *urls, *RUN_ARGS,
            "--tasks", ",".join(tasks), "--output", str(output),
            "--response-cache", str(cache) if cache else "none"]


def some_of(outputs: dict[str, list[tuple[str, str]]]) -> dict[str, list[tuple[str, str]]]:
    return {task: outputs[task] for task in SOME_TASKS}


@pytest.mark.slow
def test_served_outputs_equal_hf_and_a_rerun_makes_no_request(server, hf_outputs, tmp_path):
    proxy = FaultyProxy(server.base_url)
    try:
        assert main(served_args(tmp_path / "a", proxy.base_url, cache=tmp_path / "cache")) == 0
        assert outputs_of(tmp_path / "a") == hf_outputs
        items = sum(len(outputs) for outputs in hf_outputs.values())
        assert proxy.counts["forwarded"] == items
        results = json.loads((tmp_path / "a" / "results.json").read_text())
        assert results["settings"]["input_transport"]["lossy"] is False
        assert results["settings"]["input_transport"]["frame_encoding"] == "png"
        usage = results["backend_usage"]
        assert usage["calls"] == items and usage["cache_hits"] == 0
        assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
        assert usage["estimated_cost_usd"] is None  # no list price for a local model

        assert main(served_args(tmp_path / "b", proxy.base_url, cache=tmp_path / "cache")) == 0
        assert proxy.counts["forwarded"] == items
        assert outputs_of(tmp_path / "b") == hf_outputs
        rerun = json.loads((tmp_path / "b" / "results.json").read_text())["backend_usage"]
        assert rerun["calls"] == 0 and rerun["cache_hits"] == items
    finally:
        proxy.close()


@pytest.mark.slow
def test_server_errors_429_and_500_at_random_every_item_scored(server, hf_outputs, tmp_path):
    proxy = FaultyProxy(server.base_url, fault_rate=0.3, seed=1)
    try:
        args = served_args(tmp_path / "run", proxy.base_url, tasks=SOME_TASKS)
        args += ["--max-retries", "12"]
        assert main(args) == 0
    finally:
        proxy.close()
    assert proxy.counts["429"] > 0 and proxy.counts["500"] > 0
    assert outputs_of(tmp_path / "run", SOME_TASKS) == some_of(hf_outputs)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert all(entry["n_errors"] == 0 for entry in results["tasks"].values())
    assert results["backend_usage"]["retries"] == proxy.counts["429"] + proxy.counts["500"]


@pytest.mark.slow
def test_two_replicas_one_killed_mid_run_nothing_lost_nothing_twice(hf_outputs, tmp_path):
    survivor, doomed = Server(), Server()
    watched = FaultyProxy(doomed.base_url)
    output = tmp_path / "run"
    urls = (survivor.base_url, watched.base_url)
    run = subprocess.Popen([P2R_EVAL, *served_args(output, *urls, tasks=SOME_TASKS),
                            "--concurrency", "2"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while watched.counts["forwarded"] < 3:
            assert run.poll() is None, "the run finished before a replica was killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        doomed.kill()
        _, errors = run.communicate(timeout=300)
    finally:
        survivor.kill()
        doomed.kill()
        watched.close()
    assert run.returncode == 0, errors
    # every item, once, with the right output
    assert outputs_of(output, SOME_TASKS) == some_of(hf_outputs)
    usage = json.loads((output / "results.json").read_text())["backend_usage"]
    assert usage["replicas"][watched.base_url]["failures"] >= 1
    assert usage["replicas"][survivor.base_url]["requests"] > 0


def png_frames_of(url: str) -> list[np.ndarray]:
    media_type, payload = url.removeprefix("data:").split(";base64,", 1)
    assert media_type == FRAME_LIST_MEDIA_TYPE
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(part))))
            for part in payload.split(",")]


def test_request_body_follows_vllms_video_schema_and_carries_frames_losslessly() -> None:
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    frames = np.random.default_rng(0).integers(0, 256, (5, 30, 44, 3), dtype=np.uint8)
    request = Request("mvbench", "item-1", "What moves?", frames=frames, fps=2.0, system="Be brief")
    decoding = DecodingSettings(max_new_tokens=64, seed=3)
    body = request_body(request, "Qwen/Qwen2.5-VL-7B-Instruct", decoding,
                        Transport("vllm", "png", 95), max_pixels=256 * 28 * 28)

    checked = ChatCompletionRequest.model_validate(body)  # every field known to vLLM, typed
    video = checked.messages[1].content[0]
    assert video.type == "video_url"
    assert all(np.array_equal(a, b) for a, b in zip(png_frames_of(video.video_url.url), frames,
                                                    strict=True))
    assert set(body["media_io_kwargs"]["video"]) <= FRAME_LIST_KEYS
    assert body["media_io_kwargs"]["video"] == {"num_frames": -1, "fps": 2.0}
    # The processor arguments exist in the Qwen2-VL video processor vLLM runs.
    accepted = typing.get_type_hints(Qwen2VLVideoProcessor.valid_kwargs)
    assert set(body["mm_processor_kwargs"]) <= set(accepted)
    assert body["temperature"] == 0.0 and body["top_k"] == -1 and body["seed"] == 3
    assert body["skip_special_tokens"] is False

    lossy = request_body(request, "m", decoding, Transport("vllm", "jpeg", 95), None)
    assert not all(np.array_equal(a, b) for a, b in zip(
        png_frames_of(lossy["messages"][1]["content"][0]["video_url"]["url"]), frames,
        strict=True))
    assert Transport("vllm", "jpeg", 95).record()["lossy"] is True

    standard = request_body(request, "gpt-4o", decoding, Transport("standard", "png", 95), None)
    kinds = [part["type"] for part in standard["messages"][1]["content"]]
    assert kinds == ["image_url"] * len(frames) + ["text"]
    assert "media_io_kwargs" not in standard and "top_k" not in standard


def test_server_refuses_requests_it_cannot_answer_faithfully(server) -> None:
    frames = np.zeros((2, 28, 28, 3), dtype=np.uint8)
    body = request_body(Request("t", "i", "hi", frames=frames, fps=1.0), "demo",
                        DecodingSettings(max_new_tokens=4), Transport("vllm", "png", 95), None)
    url = server.base_url + "/chat/completions"
    for change, reason in (({"top_k": 5}, "top_k"), ({"stream": True}, "stream"),
                           ({"media_io_kwargs": {"video": {"num_frames": 1}}}, "drops no frame"),
                           ({"model": "other"}, "serves 'demo'")):
        reply = httpx.post(url, json={**body, **change}, timeout=60)
        assert reply.status_code == 400 and reason in reply.json()["error"]["message"]
    remote = json.loads(json.dumps(body))
    remote["messages"][0]["content"][0]["video_url"]["url"] = "http://example.com/v.mp4"
    reply = httpx.post(url, json=remote, timeout=60)
    assert reply.status_code == 400 and "frame list" in reply.json()["error"]["message"]


def test_backend_refuses_a_server_without_the_model_and_keeps_the_key_secret(
    server, monkeypatch
) -> None:
    from p2r_eval.models.base import BackendError

    monkeypatch.setenv("P2R_TEST_KEY", "sk-secret-123")
    endpoint = EndpointSettings(base_urls=(server.base_url,), api_key_env="P2R_TEST_KEY")
    with pytest.raises(BackendError, match="does not serve model 'missing'"):
        OpenAIBackend("missing", decoding=DecodingSettings(), endpoint=endpoint)
    dead = EndpointSettings(base_urls=("http://127.0.0.1:9/v1",), api_key_env="P2R_TEST_KEY",
                            max_retries=0)
    with pytest.raises(BackendError) as refused:
        OpenAIBackend("demo", decoding=DecodingSettings(), endpoint=dead,
                      retry_policy=RetryPolicy(max_retries=0))
    assert "no server answered" in str(refused.value)
    assert "sk-secret-123" not in str(refused.value)


def annotate(argv: list[str]) -> int:
    import argparse

    from p2r_train.cot.annotate import add_subcommand

    parser = argparse.ArgumentParser(prog="p2r-train")
    add_subcommand(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["annotate", *argv])
    return args.func(args)


@pytest.mark.slow
def test_annotate_with_a_served_teacher_generates_what_the_hf_teacher_does(server, tmp_path):
    from p2r_eval.media.synthetic_media import write_image, write_video

    media = tmp_path / "media"
    write_video(media / "clip.mp4", seconds=1, fps=8)
    write_image(media / "shelf.png")
    records = [
        {"problem_id": "mc", "problem": "What rolls?", "data_type": "video",
         "problem_type": "multiple choice", "options": ["A. a ball", "B. a cube"],
         "process": "", "solution": "<answer>A</answer>", "path": "./clip.mp4"},
        {"problem_id": "count", "problem": "How many cups?", "data_type": "image",
         "problem_type": "numerical", "options": None, "process": "",
         "solution": "<answer>3</answer>", "path": "./shelf.png"},
    ]
    (tmp_path / "records.json").write_text(json.dumps(records))
    common = ["--input", str(tmp_path / "records.json"), "--media-root", str(media),
              "--teacher", "demo", "--frames", "4", "--max-pixels", str(56 * 56),
              "--max-new-tokens", TOKENS, "--stop-after", "generate", "--judge", "toy",
              "--quiet"]
    assert annotate([*common, "--output", str(tmp_path / "hf"), "--device", "cpu"]) == 0
    assert annotate([*common, "--output", str(tmp_path / "served"), "--teacher-base-url",
                     server.base_url, "--teacher-response-cache", "none"]) == 0

    def generated(run: Path) -> dict[str, str]:
        lines = (run / "steps" / "generated.jsonl").read_text().splitlines()
        return {json.loads(line)["id"]: json.loads(line)["output"] for line in lines}

    assert generated(tmp_path / "served") == generated(tmp_path / "hf")
    assert set(generated(tmp_path / "hf")) == {"mc", "count"}
    fingerprint = json.loads((tmp_path / "served" / "run.json").read_text())["teacher"]
    assert fingerprint["fingerprint"]["backend"] == "openai"


@pytest.mark.slow
def test_probe_with_a_served_perceiver(server, tmp_path):
    from p2r_eval.models import resolve_model

    output = tmp_path / "probe"
    assert main(["probe", "--perceiver", "demo", "--perceiver-base-url", server.base_url,
                 "--reasoner", resolve_model("demo"), "--tasks", "mvbench", "--limit", "1",
                 "--frames", "4", "--max-new-tokens", TOKENS, "--response-cache", "none",
                 "--output", str(output), "--quiet"]) == 0
    perceiver = json.loads((output / "perceiver" / "results.json").read_text())
    assert perceiver["model"]["fingerprint"]["backend"] == "openai"
    assert perceiver["backend_usage"]["calls"] == 1
    reasoner = json.loads((output / "text_only" / "results.json").read_text())
    assert reasoner["model"]["fingerprint"]["backend"] == "hf"
    assert json.loads((output / "probe.json").read_text())["tasks"]["mvbench"]["n"] == 1
