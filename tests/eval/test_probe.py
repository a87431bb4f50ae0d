"""The perception-only probe end to end: a perceiver's observations, as text and without the
video, answered by the demo model; raw video against text-only, per benchmark."""

import dataclasses
import json

import pytest

from p2r_eval.benchmarks.registry import load_task
from p2r_eval.cli.main import main
from p2r_eval.core.prompts import build_prompt, prompt_hash
from p2r_eval.eval.runstore import RunStore

pytestmark = pytest.mark.slow

TASKS = ("mvbench", "videomme")


def test_probe_runs_end_to_end_on_the_demo_model(tmp_path, capsys):
    observations = {}
    lines = []
    for task in TASKS:
        for item in load_task(task).items[:2]:
            observations[(task, item.id)] = f"A person moves {item.id} objects to the left."
            output = (f"<observation>{observations[(task, item.id)]}</observation>"
                      f"<think>so</think><answer>{item.answer}</answer>")
            lines.append(json.dumps({"task": task, "id": item.id, "output": output}))
    perceiver = tmp_path / "perceiver.jsonl"
    perceiver.write_text("\n".join(lines) + "\n")
    output = tmp_path / "probe"
    assert main(["probe", "--perceiver", f"replay:{perceiver}", "--reasoner", "demo",
                 "--tasks", ",".join(TASKS), "--limit", "2", "--frames", "4",
                 "--max-new-tokens", "8", "--output", str(output), "--quiet"]) == 0
    assert "text-only observation" in capsys.readouterr().out

    summary = json.loads((output / "probe.json").read_text())
    for task in TASKS:
        entry = summary["tasks"][task]
        assert entry["n"] == 2 and entry["missing_observations"] == 0
        assert entry["raw_video"] is not None and entry["text_only"] is not None
    assert (output / "probe.png").stat().st_size > 10_000
    assert "| mvbench" in (output / "probe.md").read_text()

    text_only = RunStore(output / "text_only")
    assert json.loads(text_only.results_path.read_text())["settings"]["prompt_style"] == \
        "text-only"
    for task in TASKS:
        for item in load_task(task).items[:2]:
            sample = text_only.load_samples(task)[item.id]
            meta = {**item.meta, "observation": observations[(task, item.id)],
                    "reasoner_style": "r1"}
            asked = build_prompt(dataclasses.replace(item, media=None, media_type="none",
                                                     meta=meta), "text-only")
            assert observations[(task, item.id)] in asked
            assert sample.prompt_hash == prompt_hash(asked)
    raw = json.loads((output / "raw_video" / "results.json").read_text())
    assert raw["settings"]["prompt_style"] == "r1"
