"""One record per answer type (p2r_eval.core.answer_types): its readers, and its errors."""

from __future__ import annotations

import pytest
from p2r_train.cot.records import record_problem
from p2r_train.cot.steps import DEFAULT_MIN_SCORES, parse_min_scores

from p2r_eval.benchmarks.protocols import score_item
from p2r_eval.core.answer_types import (
    ANSWER_TYPE_RECORDS,
    ANSWER_TYPES,
    TRAINING_ANSWER_TYPES,
    answer_type,
    reward_rule,
    video_r1_item_score,
)
from p2r_eval.core.items import Item
from p2r_eval.core.prompts import build_prompt
from p2r_eval.report.analysis import think_answer_check

OUTPUT = "<think>so 12</think><answer>12</answer>"


def item_of(answer_type_name: str) -> Item:
    return Item(task="mmvu", id="1", question="How many?", options=(), answer="12",
                answer_type=answer_type_name, media=None, media_type="none")


def test_every_answer_type_has_one_record_named_after_it():
    assert ANSWER_TYPES == tuple(ANSWER_TYPE_RECORDS)
    assert all(name == record.name for name, record in ANSWER_TYPE_RECORDS.items())


@pytest.mark.parametrize("name", ANSWER_TYPES)
def test_the_prompt_ends_with_the_types_suffix(name):
    assert build_prompt(item_of(name), "direct").endswith(answer_type(name).prompt_suffix)


def test_open_ended_items_are_outside_the_video_r1_protocol_and_training():
    record = answer_type("open-ended")
    assert record.eval_rule is None and record.reward_rule is None
    assert "open-ended" not in TRAINING_ANSWER_TYPES
    scored = score_item(item_of("open-ended"), OUTPUT, "video-r1")
    assert scored.score is None
    assert video_r1_item_score("open-ended", OUTPUT, "<answer>12</answer>") == 0.0
    with pytest.raises(ValueError, match="'open-ended' has no training reward rule"):
        reward_rule("open-ended")


def test_an_unknown_type_is_named():
    with pytest.raises(ValueError, match="unknown answer type 'essay'"):
        answer_type("essay")
    with pytest.raises(ValueError, match="unknown answer type 'essay'"):
        item_of("essay")


def test_regression_scores_by_mra_in_evaluation_and_by_relative_error_in_training():
    # 3 for 4: MRA (strict <) 0.5; relative error reward 1 - 1/4 = 0.75
    assert video_r1_item_score("regression", "<answer>3</answer>", "<answer>4</answer>") == 0.5
    assert reward_rule("regression")("3", "4") == 0.75


def test_training_types_are_the_types_with_a_reward_rule_and_a_cot_threshold():
    assert set(DEFAULT_MIN_SCORES) == set(TRAINING_ANSWER_TYPES)
    fields = {"problem": "Why?", "solution": "<answer>x</answer>", "path": "a.mp4",
              "data_type": "video", "problem_type": "open-ended"}
    problem = record_problem(fields)
    assert problem is not None and "'open-ended' is not one of" in problem
    with pytest.raises(ValueError, match="TYPE one of multiple choice, numerical, regression"):
        parse_min_scores(["open-ended=0.5"])


@pytest.mark.parametrize(("name", "status"), [
    ("numerical", "match"), ("regression", "match"), ("multiple choice", "undetermined"),
    ("free-form", "n/a"), ("OCR", "n/a"), ("open-ended", "n/a"),
])
def test_the_think_answer_check_follows_the_types_form(name, status):
    assert think_answer_check(OUTPUT, name).status == status
