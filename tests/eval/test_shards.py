"""Data-parallel evaluation: two shard processes merge into exactly a single-process run."""

import json
import subprocess
import sys

import pytest

from p2r_eval.cli.main import main
from p2r_eval.eval.shards import parse_shard, shard_items

pytestmark = pytest.mark.slow

ARGS = ["--model", "demo", "--tasks", "vsibench,mvbench", "--limit", "5", "--frames", "4",
        "--max-new-tokens", "8", "--quiet"]


def samples(run):
    return {path.stem: [json.loads(line) for line in path.read_text().splitlines()]
            for path in sorted((run / "samples").glob("*.jsonl"))}


def test_two_shard_processes_merge_into_the_single_process_run(tmp_path):
    single = tmp_path / "single"
    assert main([*ARGS, "--output", str(single)]) == 0
    sharded = tmp_path / "sharded"
    processes = [
        subprocess.Popen([sys.executable, "-m", "p2r_eval.cli", *ARGS, "--output", str(sharded),
                          "--shard", f"{index}/2"], stdout=subprocess.PIPE, text=True)
        for index in range(2)
    ]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    merged = json.loads((sharded / "results.json").read_text())
    reference = json.loads((single / "results.json").read_text())
    assert merged["settings"]["merged_shards"] == 2
    for name, entry in reference["tasks"].items():
        for key in ("score", "n", "n_scored", "n_errors", "breakdown", "analysis"):
            assert merged["tasks"][name][key] == entry[key], (name, key)
    assert samples(sharded) == samples(single)
    assert (sharded / "analysis.md").read_text() == (single / "analysis.md").read_text()


def test_each_item_lands_in_exactly_one_shard():
    items = list(range(11))
    parts = [shard_items(items, (index, 3)) for index in range(3)]
    assert sorted(sum(parts, [])) == items


@pytest.mark.parametrize("text", ["2/2", "x", "1/0", "-1/2"])
def test_bad_shard_specs_are_refused(text):
    with pytest.raises(ValueError):
        parse_shard(text)


def test_auto_shard_reads_the_distributed_launch(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert parse_shard("auto") == (1, 4)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert parse_shard("auto") is None
