"""The benchmark authors' item rules (in each benchmark's module,
``p2r_eval.benchmarks.<name>``), quirks included."""

from __future__ import annotations

import pytest

from p2r_eval.benchmarks import mvbench, tempcompass, vcrbench, videomme, videommmu, vsibench

# -- VSI-Bench ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "score"),
    [("B", 1.0), ("b", 1.0), ("B.", 1.0), ("B. right", 1.0), ("b. right", 1.0),
     ("(B)", 0.0), ("The answer is B", 0.0), (" B", 0.0), ("A", 0.0), ("", 0.0)],
)
def test_vsibench_choice_is_the_first_token_ignoring_case(prediction: str, score: float) -> None:
    assert vsibench.choice_score(prediction, "B") == score


@pytest.mark.parametrize(
    ("prediction", "truth", "score"),
    [("3", "4", 0.6),            # inclusive <=: rel 0.25 counts at the 0.75 threshold
     ("2", "4", 0.1),            # rel 0.5 counts at the 0.5 threshold
     ("7", "5", 0.3),
     ("4", "4", 1.0),
     ("4 tables", "4", 1.0),     # the first token is the number
     ("4.", "4", 1.0),           # trailing dot stripped
     ("1,000", "1000", 0.0),     # Python float() does not read thousands commas
     ("about 4", "4", 0.0),
     ("", "4", 0.0)],
)
def test_vsibench_number_is_inclusive_mra_on_the_first_token(prediction: str, truth: str,
                                                               score: float) -> None:
    assert vsibench.number_score(prediction, truth) == pytest.approx(score)


# -- VideoMMMU ------------------------------------------------------------------------------

OPTIONS = ("A. aldose", "B. ketose", "C. glucose", "D. fructose")


@pytest.mark.parametrize(
    ("prediction", "letter"),
    [("A", "A"),
     ("B.", "B"),                          # the trailing dot is stripped first, then "B "
     ("The answer is C.", "C"),
     ("(D)", "D"),
     ("Answer: B", "B"),                    # "B" then a space
     ("I pick A. Actually no, B. Final.", "B"),   # several X. marks: the last one written
     ("I pick A. Actually no, B.", "A"),    # the final dot goes first: only "A." is left
     ("It has DNA. So the answer is C. Done", "C"),  # "A." inside "DNA." competes ...
     ("It has DNA. So the answer is C.", "A"),       # ... and wins once C's dot is stripped
     ("this sugar is clearly a ketose type molecule", "B"),   # > 5 words: option text
     ("ketose", "No Answer Found."),        # <= 5 words: no text matching
     ("", "API Error")],
)
def test_mmmu_choice_parser(prediction: str, letter: str) -> None:
    assert videommmu.mmmu_choice(prediction, OPTIONS) == letter


def test_mmmu_choice_only_considers_letters_of_existing_options() -> None:
    assert videommmu.mmmu_choice("E.", OPTIONS) == "No Answer Found."


@pytest.mark.parametrize(
    ("prediction", "truth", "correct"),
    [("12.97", "12.97", True),
     ("12.974", "12.97", True),             # both rounded to 2 decimals
     ("4.0", "4", True),                    # numbers compare as floats (Video-R1: 0)
     ("7,243,000", "7243000", True),        # thousands commas read (Video-R1: 0)
     ("so the total is 360 degrees", "360", True),
     ("the speed is 33", "32", False),
     ("therefore x = 1000", "1000", True),  # '=' counts on the last line
     ("", "5", False)],
)
def test_mmmu_open_parser(prediction: str, truth: str, correct: bool) -> None:
    parsed = videommmu.mmmu_open_predictions(prediction)
    assert videommmu.mmmu_open_correct(truth, parsed) is correct


def test_mmmu_open_text_answer_must_appear_inside_a_key_phrase() -> None:
    parsed = videommmu.mmmu_open_predictions("The process shown is embryo transfer")
    assert videommmu.mmmu_open_correct("Embryo transfer", parsed)
    assert videommmu.mmmu_normalize("C") == [" c", "c "]   # single letters padded


def test_mmmu_open_parser_splits_lines_only() -> None:
    """Lower-casing happens before the sentence split, so '. X' never splits; lines do."""
    parsed = videommmu.mmmu_open_predictions("The value is 3. Then it is 5")
    assert "5" not in [str(p) for p in parsed if isinstance(p, str)]
    assert 5.0 in parsed and 3.0 not in parsed


# -- Video-MME ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "letter"),
    [("C", "C"),
     ("The best answer is C.", "C"),
     ("The correct answer is (B)", "B"),
     ("(D) The three kinds are of the same number.", "D"),
     ("After watching, B", "A"),          # the A of "After" comes first
     ("Best answer: B", "B"),             # "Best answer:" is not a prefix (glued to the next)
     ("Best answer:Best option: D", "D"),  # the glued pair is removed whole
     ("Best option: A", "B"),             # not a prefix alone: the B of "Best" is found
     ("the answer is b", ""),             # lower-case letters never count
     ("", "")],
)
def test_videomme_letter(prediction: str, letter: str) -> None:
    assert videomme.letter(prediction) == letter


# -- TempCompass ----------------------------------------------------------------------------

ANSWER = "A. dunking a basketball"


@pytest.mark.parametrize(
    ("prediction", "score"),
    [("A. dunking a basketball", 1.0), ("A", 1.0), ("B", 0.0), ("A.", 1.0), ("A. anything", 1.0),
     ("B. dunking a basketball", 0.0), ("A) dunking", 1.0), ("C)", 0.0), ("A</s>", 1.0),
     ("a", None), ("(A)", None), ("E", None), ("dunking a basketball", None), ("", None)],
)
def test_tempcompass_choice(prediction: str, score: float | None) -> None:
    assert tempcompass.choice_match(prediction, ANSWER) == score


# -- MVBench --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "correct"),
    [("A", True), ("(A)", True), ("A.", True), ("a) Piling something up", True),
     ("(A) Piling something up", True), ("B", False), ("(B)", False),
     ("Answer: A", False), ("The answer is A", False),
     ("", True)],                           # "" is a substring of "(a)": the authors' quirk
)
def test_mvbench_check(prediction: str, correct: bool) -> None:
    reference = mvbench.reference("A", "Piling something up")
    assert reference == "(A) Piling something up"
    assert mvbench.check_answer(prediction, reference) is correct


# -- VCR-Bench ------------------------------------------------------------------------------


def test_vcr_parsers() -> None:
    assert vcrbench.time_interval("[12.5, 20]") == (12.5, 20.0)
    assert vcrbench.time_interval("[1, 2, 3]") is None
    assert vcrbench.time_interval("Kitchen") is None
    assert vcrbench.box("[10, 20, 30, 40]") == (10, 20, 30, 40)
    assert vcrbench.box("[10.5, 20, 30, 40]") is None
    assert vcrbench.box("[10, 20, 30]") is None


def test_vcr_ious() -> None:
    assert vcrbench.temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert vcrbench.temporal_iou((0, 10), (20, 30)) == 0.0
    assert vcrbench.temporal_iou((3, 3), (3, 3)) == 0.0          # empty union
    assert vcrbench.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert vcrbench.box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


@pytest.mark.parametrize(
    ("prediction", "truth", "score"),
    [("[0, 10]", "[1, 10]", 1.0),             # IoU 0.9 > 0.7
     ("[0, 10]", "[3, 10]", 0.0),             # IoU 0.7 is not > 0.7
     ("[0, 0, 10, 10]", "[0, 0, 10, 8]", 1.0),   # IoU 0.8 > 0.5
     ("[0, 0, 10, 10]", "[0, 0, 10, 5]", 0.0),   # IoU 0.5 is not > 0.5
     ("Kitchen", "[1, 10]", None),            # one side is not an interval: the judge's
     ("Kitchen", "Kitchen", None)],
)
def test_vcr_geometric_score(prediction: str, truth: str, score: float | None) -> None:
    assert vcrbench.geometric_score(prediction, truth) == score
