"""The results contract: the published JSON Schema is the code's, real run outputs follow it
and read back to the same bytes, and files that break it are refused naming file and field."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from results_support import minimal_results, minimal_run_results

from p2r_eval.benchmarks.registry import load_task
from p2r_eval.cli.main import main
from p2r_eval.core.jsonio import json_text
from p2r_eval.eval.results import (
    RESULTS_SCHEMA,
    RunResults,
    Sample,
    json_schema,
    json_schema_text,
)
from p2r_eval.eval.runstore import RunStore, RunStoreError

REPO = Path(__file__).resolve().parents[2]
PUBLISHED_SCHEMA = REPO / "docs" / "results-schema.json"


@pytest.fixture(scope="module")
def replay_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished replay run over the demo suite's MVBench and VSI-Bench items: one item
    unparseable (no answer tag), one missing from the replay file (an error sample)."""
    folder = tmp_path_factory.mktemp("contract")
    lines = []
    for task in ("mvbench", "vsibench"):
        items = load_task(task, None).items
        for index, item in enumerate(items[:-1]):
            output = ("<observation>o</observation><think>t</think>no tag" if index == 0 else
                      f"<observation>o</observation><think>t</think><answer>{item.answer}</answer>")
            lines.append(json.dumps({"task": task, "id": item.id, "output": output}))
    (folder / "outputs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = folder / "run"
    main(["--model", f"replay:{folder / 'outputs.jsonl'}", "--tasks", "mvbench,vsibench",
          "--output", str(run), "--quiet"])
    assert (run / "results.json").exists()
    return run


def test_published_schema_is_the_one_the_code_defines():
    assert PUBLISHED_SCHEMA.read_text(encoding="utf-8") == json_schema_text(), (
        "docs/results-schema.json is stale: regenerate it with "
        "`python scripts/results_schema.py`")


def test_a_real_run_follows_the_published_schema(replay_run):
    schema = json.loads(PUBLISHED_SCHEMA.read_text(encoding="utf-8"))
    results = json.loads((replay_run / "results.json").read_text(encoding="utf-8"))
    jsonschema.validate(results, schema)
    assert results["schema"] == RESULTS_SCHEMA
    sample_schema = {**schema["$defs"]["Sample"], "$defs": schema["$defs"]}
    lines = [json.loads(line) for task in ("mvbench", "vsibench")
             for line in (replay_run / "samples" / f"{task}.jsonl").read_text().splitlines()]
    assert any(line["error"] for line in lines) and any(line["score"] == 1.0 for line in lines)
    for line in lines:
        jsonschema.validate(line, sample_schema)


def test_a_real_run_reads_back_to_the_same_bytes(replay_run):
    text = (replay_run / "results.json").read_text(encoding="utf-8")
    results = RunResults.model_validate(json.loads(text))
    assert json_text(results.as_json(), indent=2) + "\n" == text
    for task in ("mvbench", "vsibench"):
        for line in (replay_run / "samples" / f"{task}.jsonl").read_text().splitlines():
            assert json_text(Sample.model_validate(json.loads(line)).as_json()) == line


def test_an_error_sample_keeps_only_the_fields_it_was_written_with(replay_run):
    lines = (replay_run / "samples" / "mvbench.jsonl").read_text().splitlines()
    error = next(json.loads(line) for line in lines if json.loads(line)["error"])
    assert list(Sample.model_validate(error).as_json()) == list(error)
    assert "segments" not in error


@pytest.mark.parametrize("version", [0, RESULTS_SCHEMA + 1, None])
def test_another_schema_version_is_refused_naming_file_and_versions(tmp_path, version):
    results = minimal_results()
    results["schema"] = version
    (tmp_path / "results.json").write_text(json.dumps(results), encoding="utf-8")
    with pytest.raises(RunStoreError, match=rf"results.json: field 'schema' is {version!r}; "
                                            rf"this p2r reads results schema version 1"):
        RunStore(tmp_path).read_results()


def test_a_malformed_task_entry_is_refused_naming_the_field(tmp_path):
    entry = {"score": 50.0, "n": "four", "n_scored": 4, "n_errors": 0, "breakdown": {},
             "wall_time_s": 1.0}
    (tmp_path / "results.json").write_text(json.dumps(minimal_results(tasks={"mvbench": entry})))
    with pytest.raises(RunStoreError, match=r"results.json: field 'tasks.mvbench.n': "):
        RunStore(tmp_path).read_results()


def test_an_unknown_field_is_refused_naming_it(tmp_path):
    results = {**minimal_results(), "settings": {**minimal_results()["settings"],
                                                 "temprature": 0.1}}
    (tmp_path / "results.json").write_text(json.dumps(results), encoding="utf-8")
    with pytest.raises(RunStoreError, match=r"field 'settings.temprature': Extra inputs"):
        RunStore(tmp_path).read_results()


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic warns as it writes the wrong type
def test_results_given_a_value_of_the_wrong_type_are_refused_and_nothing_is_written(tmp_path):
    store = RunStore(tmp_path)
    results = minimal_run_results()
    results.settings.seed = "zero"  # type: ignore[assignment]
    with pytest.raises(RunStoreError, match=r"field 'settings.seed': "):
        store.write_results(results)
    assert not store.results_path.exists()


def test_a_sample_that_breaks_the_contract_names_file_item_and_field(tmp_path):
    store = RunStore(tmp_path)
    store.samples_path("mvbench").parent.mkdir()
    store.samples_path("mvbench").write_text('{"id": "a1", "score": "high"}\n')
    with pytest.raises(RunStoreError, match=r"mvbench.jsonl, the sample of item 'a1': "
                                            r"field 'score'"):
        store.load_samples("mvbench")


def test_the_schema_describes_results_and_sample_lines():
    schema = json_schema()
    assert schema["properties"]["schema"]["type"] == "integer"
    assert set(schema["required"]) >= {"schema", "model", "settings", "tasks", "finished_at"}
    assert "Sample" in schema["$defs"] and "TaskEntry" in schema["$defs"]
