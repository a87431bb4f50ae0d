"""lmms-eval interop: p2r's tasks and models run by lmms-eval give p2r-eval's outputs and scores.

The lmms-eval runs use the separate environment made by ``scripts/setup_lmms_env.sh``
(``.venv-lmms``); without it those tests are skipped. lmms-eval's CLI can exit 0 when the
evaluation failed, so its results and samples files are checked, never its exit code.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from p2r_eval.benchmarks.registry import load_task, paper_task_names
from p2r_eval.core.items import item_from_row
from p2r_eval.core.prompts import build_prompt
from p2r_eval.interop.lmms_docs import (
    SCORE_METRIC,
    TaskOptions,
    doc_to_text,
    doc_to_visual,
    item_doc,
)

REPO = Path(__file__).resolve().parents[2]
LMMS_TASKS = REPO / "lmms_tasks"
PAPER_TASKS = paper_task_names()
LMMS_BIN = REPO / ".venv-lmms" / "bin"
DEMO_SETTINGS = {"frames": "4", "max_new_tokens": "12"}
needs_lmms = pytest.mark.skipif(
    not (LMMS_BIN / "lmms-eval").is_file(),
    reason=".venv-lmms not set up (bash scripts/setup_lmms_env.sh)",
)


def offline_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "P2R_HUB": "0"}


def run_lmms_eval(tasks: str, model_args: str, output: Path, *extra: str) -> dict[str, Any]:
    """Run lmms-eval with the p2r model; its results.json (the run failed when it is absent,
    whatever the exit code)."""
    command = [str(LMMS_BIN / "lmms-eval"), "eval", "--model", "p2r", "--model_args", model_args,
               "--tasks", tasks, "--include_path", str(LMMS_TASKS), "--log_samples",
               "--output_path", str(output), *extra]
    process = subprocess.run(command, capture_output=True, text=True, env=offline_env(),
                             timeout=600)
    results = sorted(output.glob("**/*_results.json"))
    assert len(results) == 1, f"lmms-eval wrote no results (exit {process.returncode}):\n" \
                              f"{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
    return json.loads(results[0].read_text())


def lmms_samples(output: Path, task: str) -> list[dict[str, Any]]:
    (path,) = output.glob(f"**/*_samples_p2r_{task}.jsonl")
    samples = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(samples, key=lambda sample: sample["doc_id"])


def raw_output(sample: dict[str, Any]) -> str:
    """The model's output as generated: lmms-eval logs ``resps`` only where it differs from
    ``filtered_resps`` (which it strips)."""
    return sample.get("resps", sample["filtered_resps"])


def run_p2r_eval(output: Path, *args: str) -> dict[str, Any]:
    """p2r-eval in the same environment as lmms-eval, so only the harness differs."""
    command = [str(LMMS_BIN / "python"), "-m", "p2r_eval.cli", *args, "--quiet",
               "--output", str(output)]
    process = subprocess.run(command, capture_output=True, text=True, env=offline_env(),
                             timeout=600)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    return json.loads((output / "results.json").read_text())


def p2r_samples(output: Path, task: str) -> list[dict[str, Any]]:
    """p2r-eval's samples in the task's item order, as lmms-eval's are in ``doc_id`` order
    (p2r-eval writes them in the order it generated them: each video's questions together)."""
    path = output / "samples" / f"{task}.jsonl"
    samples = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    position = {item.id: index for index, item in enumerate(load_task(task).items)}
    return sorted(samples, key=lambda sample: position[sample["id"]])


def same_score(lmms_value: float, p2r_value: float | None) -> bool:
    if p2r_value is None:
        return math.isnan(lmms_value)
    return lmms_value == pytest.approx(p2r_value, abs=1e-9)


# -- documents and task files (no lmms-eval needed) ------------------------------------------


@pytest.mark.parametrize("name", PAPER_TASKS)
def test_documents_round_trip_to_p2r_items_and_prompts(name):
    options = TaskOptions(task=name, prompt_style="r1", protocol="official")
    for item in load_task(name).items:
        doc = json.loads(json.dumps(item_doc(item, options)))  # what a datasets row holds
        assert item_from_row(doc) == item
        assert doc_to_text(doc) == build_prompt(item, "r1")
        assert doc_to_visual(doc) == ([] if item.media is None else [str(item.media)])


def test_task_options_come_from_yaml_metadata_and_reject_bad_values(monkeypatch, tmp_path):
    monkeypatch.setenv("P2R_DATA_ROOT", str(tmp_path))
    options = TaskOptions.from_metadata({"p2r_task": "mvbench"})
    assert options == TaskOptions("mvbench", "p2r", "video-r1", tmp_path)
    chosen = tmp_path / "chosen"
    assert TaskOptions.from_metadata({"p2r_task": "mvbench", "data_root": str(chosen)}) \
        .data_root == chosen
    with pytest.raises(ValueError, match="p2r_task"):
        TaskOptions.from_metadata({"p2r_task": "mvbenchh"})
    with pytest.raises(ValueError, match="prompt_style"):
        TaskOptions.from_metadata({"p2r_task": "mvbench", "prompt_style": "cot"})
    with pytest.raises(ValueError, match="protocol"):
        TaskOptions.from_metadata({"p2r_task": "mvbench", "protocol": "lmms"})


def lenient_yaml(path: Path) -> dict[str, Any]:
    """A task YAML with its ``!function`` tags read as plain strings."""
    loader = type("Lenient", (yaml.SafeLoader,), {})
    loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    return yaml.load(path.read_text(), Loader=loader)  # SafeLoader subclass


def test_one_lmms_task_per_benchmark_and_a_group_of_all():
    configs = [lenient_yaml(path) for path in sorted(LMMS_TASKS.glob("p2r_*.yaml"))]
    assert sorted(config["metadata"]["p2r_task"] for config in configs) == sorted(PAPER_TASKS)
    for config in configs:
        assert config["task"] == f"p2r_{config['metadata']['p2r_task']}"
        assert (LMMS_TASKS / config["include"]).is_file()
    group = lenient_yaml(LMMS_TASKS / "p2r.yaml")
    assert group["task"] == [f"p2r_{name}" for name in PAPER_TASKS]


# -- lmms-eval runs ----------------------------------------------------------------------------


@needs_lmms
@pytest.mark.slow
def test_demo_model_through_lmms_eval_gives_p2r_eval_outputs_and_scores(tmp_path):
    """Same frames, same batches (2 + 1 per task: left padding included), same greedy
    decoding: the same text, item for item."""
    model_args = ",".join(["pretrained=demo", *(f"{k}={v}" for k, v in DEMO_SETTINGS.items())])
    lmms = run_lmms_eval("p2r_mvbench,p2r_videomme", model_args, tmp_path / "lmms",
                         "--limit", "3", "--batch_size", "2")
    p2r = run_p2r_eval(tmp_path / "p2r", "--model", "demo", "--tasks", "mvbench,videomme",
                       "--limit", "3", "--frames", "4", "--max-new-tokens", "12",
                       "--batch-size", "2")
    for name in ("mvbench", "videomme"):
        ours, theirs = p2r_samples(tmp_path / "p2r", name), lmms_samples(tmp_path / "lmms", name)
        assert [s["p2r_score"]["id"] for s in theirs] == [s["id"] for s in ours]
        assert [raw_output(s) for s in theirs] == [s["output"] for s in ours]
        assert [s["p2r_score"]["item_score"] for s in theirs] == [s["score"] for s in ours]
        assert [s["p2r_score"]["extracted"] for s in theirs] == [s["extracted"] for s in ours]
        assert lmms["n-samples"][f"p2r_{name}"]["effective"] == 3
        assert same_score(lmms["results"][f"p2r_{name}"][f"{SCORE_METRIC},none"],
                          p2r["tasks"][name]["score"])


def write_replay_file(path: Path) -> Path:
    """Stored outputs for every demo item: right for every other item, wrong for the rest,
    so that each task score (and VSI-Bench's two-part aggregation) is neither 0 nor 100."""
    with path.open("w") as stream:
        for name in PAPER_TASKS:
            for index, item in enumerate(load_task(name).items):
                answer = item.answer if index % 2 == 0 else "Z"
                output = f"<think>looking</think><answer>{answer}</answer>"
                stream.write(json.dumps({"task": name, "id": item.id, "output": output}) + "\n")
    return path


@needs_lmms
@pytest.mark.slow
def test_every_benchmark_scored_and_aggregated_as_p2r_eval_does(tmp_path):
    replay = write_replay_file(tmp_path / "outputs.jsonl")
    lmms = run_lmms_eval("p2r", f"pretrained=replay:{replay}", tmp_path / "lmms")
    p2r = run_p2r_eval(tmp_path / "p2r", "--model", f"replay:{replay}", "--tasks", "all")
    for name in PAPER_TASKS:
        ours, theirs = p2r_samples(tmp_path / "p2r", name), lmms_samples(tmp_path / "lmms", name)
        assert [(s["p2r_score"]["id"], s["p2r_score"]["item_score"]) for s in theirs] \
            == [(s["id"], s["score"]) for s in ours], name
        assert same_score(lmms["results"][f"p2r_{name}"][f"{SCORE_METRIC},none"],
                          p2r["tasks"][name]["score"]), name
    assert 0 < p2r["tasks"]["vsibench"]["score"] < 100
