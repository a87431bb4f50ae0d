"""The run store: durable appends, torn-tail repair, one writer at a time."""

import json

import pytest
from results_support import minimal_results, minimal_run_results

from p2r_eval.eval.results import Sample
from p2r_eval.eval.runstore import RunStore, RunStoreError, repair_torn_tail


def test_append_and_load_round_trip(tmp_path):
    store = RunStore(tmp_path)
    store.append_sample("mvbench", Sample(id="1", score=1.0))
    store.append_sample("mvbench", Sample(id=2, score=0.0))
    assert set(store.load_samples("mvbench")) == {"1", "2"}


def test_later_line_supersedes_earlier_for_the_same_id(tmp_path):
    store = RunStore(tmp_path)
    store.append_sample("t", Sample(id="1", error="decode failed"))
    store.append_sample("t", Sample(id="1", error=None, score=1.0))
    assert store.load_samples("t")["1"].score == 1.0


def test_half_written_last_line_is_cut_not_parsed(tmp_path):
    store = RunStore(tmp_path)
    store.append_sample("t", Sample(id="1", score=1.0))
    path = store.samples_path("t")
    with path.open("a") as handle:
        handle.write('{"id": "2", "sco')
    assert set(store.load_samples("t")) == {"1"}
    assert path.read_text().endswith("}\n")
    store.append_sample("t", Sample(id="2", score=0.5))
    assert store.load_samples("t")["2"].score == 0.5


def test_truncated_last_line_ending_in_newline_is_cut(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "1"}\n{"id": "2", \n')
    assert repair_torn_tail(path)
    assert path.read_text() == '{"id": "1"}\n'


def test_damage_in_the_middle_is_an_error_naming_file_and_line(tmp_path):
    store = RunStore(tmp_path)
    path = store.samples_path("t")
    path.parent.mkdir(parents=True)
    path.write_text('{"id": "1"}\nnot json\n{"id": "3"}\n')
    with pytest.raises(RunStoreError, match=r"t\.jsonl, line 2"):
        store.load_samples("t")


def test_second_writer_is_refused_with_a_clear_message(tmp_path):
    with RunStore(tmp_path).exclusive():
        with pytest.raises(RunStoreError, match="another p2r run is writing"):
            with RunStore(tmp_path).exclusive():
                pass
    with RunStore(tmp_path).exclusive():
        pass


def test_results_are_replaced_atomically(tmp_path):
    store = RunStore(tmp_path)
    store.write_results(minimal_run_results(finished_at=None))
    store.write_results(minimal_run_results(finished_at="2026-01-01T01:00:00+00:00"))
    assert json.loads(store.results_path.read_text()) == minimal_results(
        finished_at="2026-01-01T01:00:00+00:00")
    assert not list(tmp_path.glob("*.tmp"))


def test_readers_skip_a_torn_line_without_touching_the_file(tmp_path):
    store = RunStore(tmp_path)
    store.append_sample("t", Sample(id="1"))
    path = store.samples_path("t")
    with path.open("a") as handle:
        handle.write('{"id": "2"')
    before = path.read_bytes()
    assert set(store.load_samples("t", repair=False)) == {"1"}
    assert path.read_bytes() == before
