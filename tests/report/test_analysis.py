"""Process analysis on hand-written samples, checked against values computed by hand."""

from __future__ import annotations

import pytest

from p2r_eval.eval.results import Sample
from p2r_eval.judge import Verdict
from p2r_eval.report.analysis import (
    analyze_samples,
    last_committed_letter,
    last_number,
    numbers_agree,
    render_analysis_table,
    think_answer_check,
    think_answer_mismatch,
)

OPTIONS = ["A. left", "B. right", "C. up", "D. down"]


def verdict(sufficient: bool | None) -> Verdict:
    return Verdict(sufficient, "", "", "m", "v", False, 0, 0, 0)


def mc(sample_id: str, output: str | None, score: float | None) -> Sample:
    return Sample(id=sample_id, output=output, score=score, answer_type="multiple choice",
                  options=OPTIONS)


SAMPLES = [
    mc(
        "s1",
        "<observation>The ball moves to the right.</observation>"
        "<think>It moves right, so the answer is B.</think><answer>B</answer>",
        1.0,
    ),
    mc(
        "s2",
        "<observation>A man walks left.</observation>"
        "<think>Option A is tempting. But he ends up going up, so C.</think><answer>A</answer>",
        0.0,
    ),
    mc("s3", "<think>I think the ball goes down.</think><answer>D</answer>", 1.0),
    mc(
        "s4",
        "<observation>The ball is blurry.</observation><think>Hard to tell. Maybe A.</think>"
        "<answer>B</answer>",
        0.0,
    ),
    Sample(
        id="s5",
        answer_type="numerical",
        score=1.0,
        output="<observation>Three chairs and one stool.</observation>"
        "<think>3 chairs plus 1 stool makes 4 seats.</think><answer>4</answer>",
    ),
    Sample(
        id="s6",
        answer_type="regression",
        score=0.3,
        output="<observation>The table is long.</observation><think>About 2.46 meters.</think>"
        "<answer>2.5</answer>",
    ),
    Sample(
        id="s7",
        answer_type="OCR",
        score=1.0,
        output="<observation>Sign reads STOP.</observation><think>The sign says STOP."
        "<answer>STOP</answer>",
    ),
    mc("s8", None, None),
    mc(
        "s9",
        "<observation>o</observation><think>So the answer is C</think><answer>C</answer>",
        None,
    ),
]
VERDICTS = {
    "s1": verdict(True),
    "s2": True,
    "s3": None,
    "s4": False,
    "s7": verdict(False),
    "s9": True,
}


class CharacterTokenizer:
    """One token per character: lengths that are easy to count by hand."""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        assert add_special_tokens is False
        return [ord(c) for c in text]


def test_format_compliance_and_word_lengths_match_hand_counts():
    analysis = analyze_samples(SAMPLES, verdicts=VERDICTS)
    assert (analysis.samples, analysis.errored, analysis.length_unit) == (8, 1, "words")
    assert analysis.well_formed == 6 and analysis.well_formed_rate == 0.75
    assert analysis.deviation_counts == {
        "missing:observation": 1,
        "missing:think": 1,
        "unclosed:think": 1,
        "nested": 1,
    }
    observation, think, answer = (analysis.segments[t] for t in ("observation", "think", "answer"))
    # observation words: s1 6, s2 4, s4 4, s5 5, s6 4, s7 3, s9 1
    assert (observation.present, observation.compliant, observation.compliance_rate) == (
        7,
        7,
        7 / 8,
    )
    assert observation.mean_length == pytest.approx(27 / 7)
    assert (observation.median_length, observation.min_length, observation.max_length) == (4, 1, 6)
    # think words: s1 8, s2 12, s3 6, s4 5, s5 8, s6 3, s9 5
    assert (think.present, think.compliant) == (7, 7)
    assert think.mean_length == pytest.approx(47 / 7) and think.median_length == 6
    assert (answer.present, answer.compliant, answer.mean_length) == (8, 8, 1.0)


def test_lengths_in_tokens_with_a_tokenizer():
    analysis = analyze_samples(SAMPLES[:2], tokenizer=CharacterTokenizer())
    assert analysis.length_unit == "tokens"
    # "The ball moves to the right." (28) and "A man walks left." (17)
    assert analysis.segments["observation"].mean_length == 22.5
    assert analysis.per_sample[0].lengths == {"observation": 28, "think": 35, "answer": 1}


def test_lengths_with_the_real_demo_tokenizer():
    from p2r_eval.models.demo import build_demo_tokenizer

    tokenizer = build_demo_tokenizer()
    analysis = analyze_samples(SAMPLES[:1], tokenizer=tokenizer)
    expected = len(tokenizer.encode("B", add_special_tokens=False))
    assert analysis.length_unit == "tokens"
    assert analysis.per_sample[0].lengths["answer"] == expected


def test_think_answer_mismatch_rate_matches_hand_counts():
    analysis = analyze_samples(SAMPLES, verdicts=VERDICTS)
    statuses = {p.id: p.think_answer for p in analysis.per_sample}
    assert statuses == {
        "s1": "match",
        "s2": "mismatch",
        "s3": "undetermined",
        "s4": "mismatch",
        "s5": "match",
        "s6": "match",
        "s7": "n/a",
        "s9": "match",
    }
    mismatch = analysis.mismatch
    assert (mismatch.matches, mismatch.mismatches) == (4, 2)
    assert (mismatch.undetermined, mismatch.not_applicable) == (1, 1)
    assert mismatch.rate == pytest.approx(2 / 6)


def test_error_attribution_matches_hand_counts():
    analysis = analyze_samples(SAMPLES, verdicts=VERDICTS)
    attribution = analysis.attribution
    assert (attribution.scored, attribution.correct, attribution.wrong) == (7, 4, 3)
    assert (attribution.perception, attribution.reasoning, attribution.unknown) == (1, 1, 1)
    assert attribution.correct_with_insufficient_observation == 1
    failures = {p.id: p.failure for p in analysis.per_sample if p.failure}
    assert failures == {"s2": "reasoning", "s4": "perception", "s6": "unknown"}
    result = analysis.as_dict()
    assert result["attribution"]["perception_share"] == pytest.approx(1 / 3)
    assert (
        "per_sample" not in result
        and len(analysis.as_dict(include_samples=True)["per_sample"]) == 8
    )


def test_verdicts_are_found_by_the_sample_id_or_its_string():
    sample = SAMPLES[1].model_copy(update={"id": 5})
    assert analyze_samples([sample], verdicts={5: False}).per_sample[0].failure == "perception"
    assert analyze_samples([sample], verdicts={"5": True}).per_sample[0].failure == "reasoning"


def test_correct_thresholds_are_configurable():
    lenient = analyze_samples(SAMPLES, verdicts=VERDICTS, correct_thresholds={"regression": 0.2})
    # s6 (regression, 0.3) becomes correct; types missing from the mapping fall back to 1.0
    assert (lenient.attribution.correct, lenient.attribution.unknown) == (5, 0)


def test_r1_style_requires_only_think_and_answer():
    analysis = analyze_samples(SAMPLES, required=("think", "answer"))
    assert analysis.well_formed == 7  # s3 no longer misses anything; s7 still broken
    assert "missing:observation" not in analysis.deviation_counts


def test_the_table_shows_every_number():
    table = render_analysis_table(analyze_samples(SAMPLES, verdicts=VERDICTS))
    assert "lengths in words" in table and "8 samples, 1 errored" in table
    assert "| observation" in table and "87.5%" in table
    assert "33.3%" in table  # mismatch rate and each attribution share
    assert "1 (33.3%)" in table


@pytest.mark.parametrize(
    ("think", "letters", "expected"),
    [
        ("A man opens the door, so the answer is B.", "ABCD", "B"),
        ("I think it's C", "ABCD", "C"),
        ("Option (D) is right", "ABCD", "D"),
        ("The answer is B but wait", "ABCD", "B"),
        ("So the answer: **C**", "ABCD", "C"),
        ("I see a man. So C.", "AB", None),
        ("A dog and I walk", "ABCDEFGHI", None),
        ("B-roll footage; going with A", "AB", "A"),
    ],
)
def test_the_committed_letter_of_a_think_text(think, letters, expected):
    assert last_committed_letter(think, tuple(letters)) == expected


def test_numbers_in_think_texts():
    assert last_number("Qwen2.5 counted 7 chairs and 1,200 bricks.") == "1,200"
    assert last_number("frames 1-3") == "3" and last_number("no digits") is None
    assert numbers_agree("3.333", "3.33") and numbers_agree("3", "3.0")
    assert numbers_agree("2.46", "2.5") and not numbers_agree("100", "101")


def test_the_public_mismatch_function():
    output = "<think>3 chairs, 2 tables: 5 items.</think><answer>{}</answer>"
    assert think_answer_mismatch(output.format("5"), "numerical", None) is False
    assert think_answer_mismatch(output.format("6"), "numerical", None) is True
    assert think_answer_mismatch(output.format("five"), "numerical", None) is None
    assert think_answer_mismatch("<answer>5</answer>", "numerical", None) is None
    assert think_answer_mismatch(output.format("5"), "free-form", None) is None
    letter = "<think>It goes right, so B.</think><answer>{}</answer>"
    assert think_answer_mismatch(letter.format("B. right"), "multiple choice", OPTIONS) is False
    assert think_answer_mismatch(letter.format("(A)"), "multiple choice", OPTIONS) is True
    check = think_answer_check(letter.format("A"), "multiple choice", OPTIONS)
    assert (check.conclusion, check.answer) == ("B", "A")


def test_a_generated_sample_without_an_answer_type_is_a_clear_error():
    with pytest.raises(ValueError, match="'bad'.*answer_type"):
        analyze_samples([Sample(id="bad", output="x")])
