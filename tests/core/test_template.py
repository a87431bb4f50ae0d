"""The one parser of model outputs, on ugly outputs."""

import re

import pytest

from p2r_eval.core.template import THINK_ANSWER_TAGS, parse

WELL_FORMED = "<observation>a red ball</observation><think>it moves left</think><answer>B</answer>"


def test_well_formed_output_has_all_segments_and_no_deviation():
    segments = parse(WELL_FORMED)
    assert (segments.observation, segments.think, segments.answer) == (
        "a red ball", "it moves left", "B")
    assert segments.deviations() == []
    assert segments.well_formed()


def test_spans_point_at_the_segment_text():
    text = "  " + WELL_FORMED + "\n"
    segments = parse(text)
    for tag in ("observation", "think", "answer"):
        start, end = segments.content_spans[tag]
        assert text[start:end] == segments.contents[tag]
        block_start, block_end = segments.block_spans[tag]
        assert text[block_start:block_end] == f"<{tag}>{segments.contents[tag]}</{tag}>"
    assert not segments.outside_text


def test_empty_string():
    segments = parse("")
    assert segments.answer is None
    assert segments.deviations() == ["missing:observation", "missing:think", "missing:answer"]


@pytest.mark.parametrize("value", [None, 42, b"bytes"])
def test_non_string_input_never_raises(value):
    assert parse(value).answer is None


def test_missing_observation():
    segments = parse("<think>x</think><answer>A</answer>")
    assert segments.deviations() == ["missing:observation"]
    assert segments.well_formed(THINK_ANSWER_TAGS)


def test_answer_with_no_think():
    segments = parse("<answer>C</answer>")
    assert segments.answer == "C"
    assert "missing:think" in segments.deviations()


def test_doubled_tags_keep_the_first_and_flag_duplicate():
    segments = parse("<think>a</think><answer>A</answer><answer>B</answer>")
    assert segments.answer == "A"
    assert segments.duplicates == ("answer",)
    assert "duplicate:answer" in segments.deviations(THINK_ANSWER_TAGS)


def test_nested_tags_follow_the_video_r1_regex_and_flag_nesting():
    text = "<think>so <answer>B</answer> maybe</think><answer>C</answer>"
    segments = parse(text)
    regex = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)
    assert segments.answer == regex.group(1) == "B"
    assert segments.nested
    assert "nested" in segments.deviations(THINK_ANSWER_TAGS)


def test_unclosed_tag_is_truncation():
    segments = parse("<observation>a cat</observation><think>the cat is on the")
    assert segments.truncated
    assert segments.unclosed == ("think",)
    assert not segments.present("think")
    assert "unclosed:think" in segments.deviations()


def test_misordered_segments():
    segments = parse("<answer>A</answer><think>t</think><observation>o</observation>")
    assert segments.answer == "A"
    assert "misordered" in segments.deviations()


def test_text_outside_tags():
    segments = parse("Sure! <think>t</think><answer>A</answer> Hope this helps.")
    assert segments.outside_text
    assert segments.deviations(THINK_ANSWER_TAGS) == ["outside_text"]


def test_stray_closing_tag():
    segments = parse("</think><think>t</think><answer>A</answer>")
    assert segments.stray_closing == ("think",)


def test_empty_segment():
    segments = parse("<observation> </observation><think>t</think><answer>A</answer>")
    assert segments.deviations() == ["empty:observation"]


def test_unicode_and_newlines_inside_segments():
    text = "<observation>猫が\n左へ 🐈</observation>\n<think>ø</think>\n<answer>\n 12,5 \n</answer>"
    segments = parse(text)
    assert segments.observation == "猫が\n左へ 🐈"
    assert segments.answer == "\n 12,5 \n"
    assert segments.well_formed()


def test_tags_are_case_sensitive_like_the_video_r1_regex():
    segments = parse("<ANSWER>A</ANSWER>")
    assert segments.answer is None
