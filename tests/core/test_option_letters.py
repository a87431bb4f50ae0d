"""p2r's one rule from option strings to letters (p2r_eval.core.items.split_option) and its readers:
the judge's prompt, the think-answer check, the TempCompass mapping and official scoring's
option texts."""

from __future__ import annotations

import pytest

from p2r_eval.benchmarks.formats.errors import RecordError
from p2r_eval.benchmarks.tempcompass import leading_letter
from p2r_eval.core.items import option_text, split_option
from p2r_eval.judge.prompts import resolve_correct_answer
from p2r_eval.report.analysis import answer_letter, option_letters


@pytest.mark.parametrize("option", ["B. red car", "(B) red car", "B) red car", "B: red car",
                                    " B . red car"])
def test_every_label_form_gives_its_letter_and_text(option):
    assert split_option(option) == ("B", "red car")


@pytest.mark.parametrize("text", ["I think so", "red car", "b. lower case", "AB. two", ""])
def test_text_without_a_label_has_no_letter(text):
    assert split_option(text) is None


def test_option_text_keeps_video_r1s_option_text_as_written():
    options = ("A. left", "B.right", "C.  two spaces")
    assert [option_text(options, letter) for letter in "ABCD"] == ["left", "right", " two spaces",
                                                                    ""]


def test_readers_agree_on_a_parenthesised_option():
    options = ("(A) a cat", "(B) a dog")
    assert resolve_correct_answer("B", options) == "(B) a dog"
    assert option_letters(options) == ("A", "B")
    assert answer_letter("(B) a dog", option_letters(options)) == "B"
    assert leading_letter({"answer": "(B) a dog"}, "answer") == "B"
    assert option_text(options, "B") == "a dog"


def test_an_answer_without_a_letter_is_a_record_error():
    with pytest.raises(RecordError, match="expected an answer starting 'X.'"):
        leading_letter({"answer": "dunking a basketball"}, "answer")
