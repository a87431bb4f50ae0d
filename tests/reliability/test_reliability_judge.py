"""Judge faults: the real anthropic and openai SDKs against the local fake server of
``tests/judge_server.py``, with exactly 30% of the calls failing, two of each of the six kinds
(429 with retry-after, 500, 529 overloaded, a reply slower than the client timeout, a malformed
JSON body, a truncated body), placed at seeded random positions.

Proved here: the verdicts (and, through ``p2r-eval``, every item's score) equal those of a
fault-free run; every fault costs exactly one retry, and the retries are reported (usage,
results.json). A run whose retry budget is spent stops sending items to the judge, says so
clearly, exits 3, and a later run scores the rest without repeating any finished call.

Already proved in tests/judge/test_judge.py and not repeated: retry-after as a floor on the wait,
exponential backoff with jitter, a permanent error (400) not retried, an exhausted budget in
``sufficiency_many`` naming the item, the reply cache across processes.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from p2r_eval.cli.main import main
from p2r_eval.eval.runstore import RunStore
from p2r_eval.judge import GradeQuery, RetryPolicy, SufficiencyQuery, make_judge

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from judge_server import TRANSIENT_FAULTS, FakeJudgeServer

KEY = "test-key"
CLIENT_TIMEOUT_S = 1.0
SLOW_REPLY_S = 4.0
OPTIONS = ("A. a red car", "B. a blue bicycle", "C. a green bus")


def thirty_percent_faults(successes: int, per_kind: int, seed: int) -> list[str]:
    """Fault names for ``successes + 6 * per_kind`` calls, 30% of them faults: every fault is
    retried once, so the calls are exactly the successes plus the faults. The last call is a
    success (after the last success no request is left to draw a fault)."""
    faults = [kind for kind in TRANSIENT_FAULTS for _ in range(per_kind)]
    assert len(faults) / (len(faults) + successes) == pytest.approx(0.3)
    sequence = ["ok"] * (successes - 1) + faults
    random.Random(seed).shuffle(sequence)
    return [*sequence, "ok"]


def no_wait_policy() -> RetryPolicy:
    return RetryPolicy(base_delay_s=0.001, max_delay_s=0.01, sleep=lambda seconds: None)


def judge_for(backend: str, server: FakeJudgeServer):
    url = server.url if backend == "anthropic" else server.openai_base_url
    return make_judge(backend, base_url=url, model="fake-judge-1", cache_dir=None,
                      concurrency=4, max_retries=12, timeout_s=CLIENT_TIMEOUT_S,
                      retry_policy=no_wait_policy())


def mixed_queries() -> tuple[list[SufficiencyQuery], list[GradeQuery]]:
    """14 sufficiency and 14 grading queries, about half of each answered yes."""
    observations = ["I see a red car in front of the house.", "A blue bicycle and a tree."]
    sufficiency = [SufficiencyQuery("What is parked?", OPTIONS, "A",
                                    f"Frame {i}: {observations[i % 2]}", id=f"s{i}")
                   for i in range(14)]
    grading = [GradeQuery("How many cars?", "3", f"Frame {i}: {3 if i % 2 else 4 + i} cars.",
                          id=f"g{i}") for i in range(14)]
    return sufficiency, grading


def verdict_record(verdict) -> tuple:
    return (verdict.sufficient, verdict.rationale, verdict.raw, verdict.input_tokens,
            verdict.output_tokens)


@pytest.mark.parametrize("backend", ["anthropic", "openai"])
def test_thirty_percent_faults_of_six_kinds_change_no_verdict(backend, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    sufficiency, grading = mixed_queries()
    with FakeJudgeServer(api_key=KEY) as server:
        clean = judge_for(backend, server)
        expected = [*clean.sufficiency_many(sufficiency), *clean.grade_many(grading)]
        assert server.model_calls() == 28 and clean.usage().retries == 0
    faults = thirty_percent_faults(successes=28, per_kind=2, seed=len(backend))
    with FakeJudgeServer(api_key=KEY, faults=faults, slow_reply_s=SLOW_REPLY_S) as server:
        judge = judge_for(backend, server)
        verdicts = [*judge.sufficiency_many(sufficiency), *judge.grade_many(grading)]
        served = dict(server.faults_served)
        calls = server.model_calls()
    assert [verdict_record(v) for v in verdicts] == [verdict_record(v) for v in expected]
    assert {v.sufficient for v in verdicts} == {True, False}
    assert served == {"ok": 28, **dict.fromkeys(TRANSIENT_FAULTS, 2)}
    assert calls == 40  # 12 of 40 calls failed: 30%
    usage = judge.usage()
    assert (usage.calls, usage.retries, usage.failures) == (40, 12, 0)
    assert sum(v.retries for v in verdicts) == 12


# -- through p2r-eval ---------------------------------------------------------------------------
ITEMS = 14


def mmvu_record(problem_id: int) -> dict:
    answer = "ABCDE"[problem_id % 5]
    return {"problem_id": problem_id, "problem": f"Which quantity stays constant in clip "
                                                 f"{problem_id}?",
            "data_type": "video", "problem_type": "multiple choice",
            "options": [f"{letter}. quantity {letter}" for letter in "ABCDE"],
            "solution": f"<answer>{answer}</answer>",
            "path": f"./Evaluation/MMVU/videos/Mechanics/{problem_id}.mp4"}


@pytest.fixture
def judged_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """MMVU under the official protocol: the judge grades every item. Replayed outputs are
    right on two items in three."""
    monkeypatch.setenv("P2R_HUB", "0")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    root = tmp_path / "data"
    root.mkdir()
    records = [mmvu_record(i) for i in range(1, ITEMS + 1)]
    (root / "eval_mmvu.json").write_text(json.dumps(records))
    lines = []
    for record in records:
        letter = record["problem_id"] % 5
        answer = "ABCDE"[letter if record["problem_id"] % 3 else (letter + 1) % 5]
        lines.append(json.dumps({"task": "mmvu", "id": record["problem_id"],
                                 "output": f"<think>t</think><answer>{answer}</answer>"}))
    (tmp_path / "replay.jsonl").write_text("\n".join(lines) + "\n")
    return {"root": root, "replay": tmp_path / "replay.jsonl", "base": tmp_path}


def eval_args(task: dict[str, Path], server: FakeJudgeServer, output: Path, cache: Path,
              *extra: str) -> list[str]:
    return ["--model", f"replay:{task['replay']}", "--tasks", "mmvu", "--data-root",
            str(task["root"]), "--protocol", "official", "--judge", "openai",
            "--judge-base-url", server.openai_base_url, "--judge-cache", str(cache),
            "--judge-timeout", str(CLIENT_TIMEOUT_S), "--quiet", "--output", str(output), *extra]


def scores(run: Path) -> dict[str, tuple]:
    return {item_id: (s.score, s.extracted, s.note)
            for item_id, s in RunStore(run).load_samples("mmvu").items()}


@pytest.mark.slow
def test_p2r_eval_with_thirty_percent_judge_faults_scores_like_a_clean_run(judged_task):
    base = judged_task["base"]
    with FakeJudgeServer(api_key=KEY) as server:
        assert main(eval_args(judged_task, server, base / "clean", base / "cache-clean")) == 0
    faults = thirty_percent_faults(successes=ITEMS, per_kind=1, seed=4)
    with FakeJudgeServer(api_key=KEY, faults=faults, slow_reply_s=SLOW_REPLY_S) as server:
        assert main(eval_args(judged_task, server, base / "faulty", base / "cache-faulty")) == 0
        assert server.model_calls() == 20  # 6 of 20 failed
    assert scores(base / "faulty") == scores(base / "clean")
    assert {s[0] for s in scores(base / "clean").values()} == {0.0, 1.0}
    clean = json.loads((base / "clean" / "results.json").read_text())
    faulty = json.loads((base / "faulty" / "results.json").read_text())
    assert faulty["tasks"]["mmvu"]["score"] == clean["tasks"]["mmvu"]["score"]
    usage = faulty["judge"]["usage"]
    assert (usage["calls"], usage["retries"], usage["failures"]) == (20, 6, 0)
    assert faulty["judge"]["gave_up"] is None


@pytest.mark.slow
def test_an_exhausted_retry_budget_stops_judging_and_a_rerun_finishes_without_repeats(
    judged_task, capsys
):
    base = judged_task["base"]
    with FakeJudgeServer(api_key=KEY) as server:
        assert main(eval_args(judged_task, server, base / "reference", base / "cache-ref")) == 0
    output, cache = base / "run", base / "cache"
    down = ["ok"] * 5 + ["529"] * 50  # five items judged, then the judge is overloaded
    with FakeJudgeServer(api_key=KEY, faults=down) as server:
        capsys.readouterr()
        code = main(eval_args(judged_task, server, output, cache, "--judge-max-retries", "1"))
        assert code == 3
        assert server.model_calls() == 5 + 2  # one item spent the budget; none sent after it
    error = capsys.readouterr().err
    assert f"{ITEMS - 5} judge-graded items are not scored yet" in error
    assert "gave up after 2 attempts" in error and "529" in error
    assert "run the same command again" in error
    first = scores(output)
    assert len(first) == ITEMS and sum(score is None for score, _, _ in first.values()) == 9
    assert all(RunStore(output).load_samples("mmvu")[i].output for i in first)
    results = json.loads((output / "results.json").read_text())
    assert results["tasks"]["mmvu"]["n_judge_pending"] == 9
    assert "gave up after 2 attempts" in results["judge"]["gave_up"]
    assert results["judge"]["usage"]["calls"] == 7

    with FakeJudgeServer(api_key=KEY) as server:
        assert main(eval_args(judged_task, server, output, cache)) == 0
        assert server.model_calls() == 9  # only the items without a grade
        prompts = server.prompts
    finished_before = {i for i, (score, _, _) in first.items() if score is not None}
    for item_id in finished_before:
        question = f"clip {item_id}?"
        assert not any(question in prompt for prompt in prompts), "a finished call was repeated"
    assert scores(output) == scores(base / "reference")
    results = json.loads((output / "results.json").read_text())
    assert results["tasks"]["mmvu"]["n_judge_pending"] == 0
    assert results["judge"]["usage"]["calls"] == 7 + 9  # both processes' calls

    with FakeJudgeServer(api_key=KEY) as server:
        capsys.readouterr()
        assert main(eval_args(judged_task, server, output, cache)) == 0
        assert server.model_calls() == 0
    assert "already finished" in capsys.readouterr().out


def test_a_run_without_a_judge_is_graded_when_a_judge_is_added(judged_task, capsys):
    """Judge-graded items of a run made without a judge are 'not scored'; the same command
    with a judge grades them instead of reporting the run as finished."""
    base = judged_task["base"]
    output = base / "run"
    no_judge = ["--model", f"replay:{judged_task['replay']}", "--tasks", "mmvu", "--data-root",
                str(judged_task["root"]), "--protocol", "official", "--quiet",
                "--output", str(output)]
    assert main(no_judge) == 0
    assert all(score is None for score, _, _ in scores(output).values())
    with FakeJudgeServer(api_key=KEY) as server:
        assert main(eval_args(judged_task, server, output, base / "cache")) == 0
        assert server.model_calls() == ITEMS
    assert all(score is not None for score, _, _ in scores(output).values())


def test_judge_graded_items_of_a_batch_are_graded_concurrently_with_the_same_scores(
    judged_task
):
    base = judged_task["base"]
    with FakeJudgeServer(api_key=KEY) as server:
        assert main(eval_args(judged_task, server, base / "one", base / "cache-one")) == 0
    with FakeJudgeServer(api_key=KEY) as server:
        assert main(eval_args(judged_task, server, base / "batched", base / "cache-batched",
                              "--batch-size", "8", "--judge-concurrency", "4")) == 0
        assert server.model_calls() == ITEMS
    assert scores(base / "batched") == scores(base / "one")
    one = json.loads((base / "one" / "results.json").read_text())["tasks"]["mmvu"]
    batched = json.loads((base / "batched" / "results.json").read_text())["tasks"]["mmvu"]
    assert batched["score"] == one["score"] and batched["breakdown"] == one["breakdown"]


# -- a damaged reply cache ---------------------------------------------------------------------
CACHE_DAMAGE = {  # what is done to the cache file (its WAL files removed)
    "garbage": lambda data: b"not a database\n" * 300,
    "truncated to a third": lambda data: data[: len(data) // 3],
    "header byte flipped": lambda data: data[:5] + bytes([data[5] ^ 0xFF]) + data[6:],
    "emptied": lambda data: b"",
}


@pytest.mark.parametrize("damage", list(CACHE_DAMAGE))
@pytest.mark.slow
def test_a_damaged_reply_cache_is_refused_by_name_or_starts_afresh(damage, judged_task, capsys):
    """An unreadable cache stops the run before any work (exit 2, one line naming the file and
    what to do); an empty file is an empty cache: every item graded again, same scores."""
    base = judged_task["base"]
    cache = base / "cache"
    with FakeJudgeServer(api_key=KEY) as server:
        assert main(eval_args(judged_task, server, base / "reference", cache)) == 0
    cache_file = cache / "judge_cache.sqlite3"
    for journal in cache.glob("judge_cache.sqlite3-*"):
        journal.unlink()
    cache_file.write_bytes(CACHE_DAMAGE[damage](cache_file.read_bytes()))
    capsys.readouterr()
    with FakeJudgeServer(api_key=KEY) as server:
        code = main(eval_args(judged_task, server, base / "run", cache))
        calls = server.model_calls()
    error = capsys.readouterr().err
    if damage == "emptied":
        assert code == 0 and calls == ITEMS
        assert scores(base / "run") == scores(base / "reference")
        return
    assert code == 2 and calls == 0, error
    assert error.startswith("p2r-eval: ") and error.count("\n") == 1, error
    assert f"judge cache {cache_file} is damaged" in error and "--judge-cache" in error
    assert not (base / "run" / "samples").exists()
