"""The shared item rules (eval, CoT verification and RL rewards call these)."""

import pytest

from p2r_eval.core.answer_types import video_r1_item_score
from p2r_eval.core.scoring import (
    exact_match,
    extract_answer,
    mean_relative_accuracy,
    numerical_match,
    relative_error_reward,
    rouge_score,
    word_error_rate_score,
)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("<think>x</think><answer> B </answer>", "B"),
        ("<answer>\nA\n</answer><answer>C</answer>", "A"),
        ("  A  ", "A"),
        ("<answer>A", "<answer>A"),
    ],
)
def test_extract_answer_takes_the_first_answer_or_the_whole_output(output, expected):
    assert extract_answer(output) == expected


@pytest.mark.parametrize(
    ("prediction", "score"),
    [("A", 1.0), ("A.", 0.0), ("(A)", 0.0), ("a", 0.0), ("A. front-left", 0.0)],
)
def test_multiple_choice_is_case_sensitive_exact(prediction, score):
    assert exact_match(prediction, "A") == score


@pytest.mark.parametrize(
    ("prediction", "truth", "score"),
    [("4", "4.0", 0.0), ("7,243,000", "7243000", 0.0), ("12.974", "12.97", 1.0), ("12", "12", 1.0),
     ("twelve", "12", 0.0), ("1,5", "1.5", 0.0), ("nan", "nan", 0.0)],
)
def test_numerical_rules(prediction, truth, score):
    assert numerical_match(prediction, truth) == score


@pytest.mark.parametrize(
    ("prediction", "truth", "strict", "inclusive"),
    [("3", "4", 0.5, 0.6), ("2", "4", 0.0, 0.1), ("7", "5", 0.2, 0.3), ("4", "4", 1.0, 1.0),
     ("4 tables", "4", 0.0, 0.0)],
)
def test_mean_relative_accuracy_strict_and_inclusive(prediction, truth, strict, inclusive):
    assert mean_relative_accuracy(prediction, truth) == pytest.approx(strict)
    assert mean_relative_accuracy(prediction, truth, inclusive=True) == pytest.approx(inclusive)


def test_relative_error_reward_is_linear_and_clipped():
    assert relative_error_reward("3", "4") == pytest.approx(0.75)
    assert relative_error_reward("100", "4") == 0.0
    assert relative_error_reward("x", "4") == 0.0


def video_r1_regression_reward(prediction: float, truth: float) -> float:
    """Video-R1's formula (grpo.py, accuracy_reward, "regression"), for comparison."""
    relative = (abs(prediction - truth) + 1e-9) / (abs(truth) + 1e-9)
    return 1 - min(1.0, max(0.0, relative))


@pytest.mark.parametrize(("prediction", "truth"), [
    (3, 4), (4, 4), (100, 4), (-2, 4), (0.5, 0.25), (7, -7), (0, 3), (2.5, 1e-3),
])
def test_relative_error_reward_is_video_r1s_away_from_zero(prediction, truth):
    ours = relative_error_reward(str(prediction), str(truth))
    assert ours == pytest.approx(video_r1_regression_reward(prediction, truth), abs=1e-6)


def test_relative_error_reward_at_a_zero_truth_differs_from_video_r1_as_documented():
    assert video_r1_regression_reward(0, 0) == 0.0  # Video-R1: even the exact answer gets 0
    assert relative_error_reward("0", "0") == 1.0
    assert relative_error_reward("0.5", "0") == 0.0 == video_r1_regression_reward(0.5, 0)


def test_word_error_rate_score():
    assert word_error_rate_score("the quick fox", "the quick brown fox") == pytest.approx(0.75)
    assert word_error_rate_score("", "text") == 0.0


def test_rouge_score_is_mean_of_three_f1():
    assert rouge_score("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    partial = rouge_score("a cat sat", "the cat sat on the mat")
    assert 0.0 < partial < 1.0


def test_video_r1_item_score_extracts_both_sides():
    assert video_r1_item_score("multiple choice", "<answer>B</answer>", "<answer>B</answer>") == 1.0
    assert video_r1_item_score("multiple choice", "B", "<answer>B</answer>") == 1.0
    assert video_r1_item_score("regression", "<answer>3</answer>", "<answer>4</answer>") == 0.5
    assert video_r1_item_score("unknown type", "B", "<answer>B</answer>") == 0.0
