"""Data-parallel evaluation: two shard processes merge into exactly a single-process run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from p2r_eval.cli.main import main
from p2r_eval.core.items import Item
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


def test_each_item_lands_in_exactly_one_shard_with_the_other_questions_on_its_video():
    def item(number: int, video: str | None) -> Item:
        return Item(task="t", id=str(number), question="Q?", options=("A. x", "B. y"),
                    answer="A", answer_type="multiple choice",
                    media=Path(video) if video else None,
                    media_type="video" if video else "none")

    videos = ["a", "b", "a", None, "c", "b", None, "a", "d", "c", "e"]
    items = [item(number, video) for number, video in enumerate(videos)]
    parts = [shard_items(items, (index, 3)) for index in range(3)]
    assert sorted(int(i.id) for part in parts for i in part) == list(range(len(videos)))
    for part in parts:
        for other in parts:
            if other is not part:
                assert not {i.media for i in part if i.media} & {i.media for i in other if i.media}
    # groups in order: a (0, 2, 7), b (1, 5), text 3, c (4, 9), text 6, d (8), e (10)
    assert [[i.id for i in part] for part in parts] == [
        ["0", "2", "7", "4", "9", "10"], ["1", "5", "6"], ["3", "8"]]


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
