"""Training records to items and rows, and the collators (real videos, the demo processor)."""

from __future__ import annotations

import json

import pytest
import torch
from p2r_train.inputs.collate import (
    RolloutCollator,
    SFTCollator,
    TrainingMediaError,
    reply_labels,
    training_processor,
)
from p2r_train.inputs.data import (
    TrainingDataError,
    process_aware_target,
    read_records,
    record_to_item,
    rl_rows,
    sft_rows,
    think_answer_target,
)
from training_support import (
    TEST_POLICY,
    cot_record,
    demo_model,
    rl_record,
    write_clips,
    write_picture,
)

from p2r_eval.core.items import item_from_row
from p2r_eval.core.prompts import build_prompt
from p2r_eval.media.requests import RequestBuilder
from p2r_eval.media.synthetic_media import write_text_file


@pytest.fixture(scope="module")
def processor(tmp_path_factory):
    from transformers import AutoProcessor

    return training_processor(AutoProcessor.from_pretrained(demo_model(tmp_path_factory)),
                              TEST_POLICY)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    write_clips(folder, 2)
    write_picture(folder)
    write_text_file(folder / "broken.mp4")
    return folder


def test_read_records_json_and_jsonl(tmp_path):
    records = [rl_record(1, "a.mp4"), rl_record(2, "b.mp4")]
    (tmp_path / "r.json").write_text(json.dumps(records))
    (tmp_path / "r.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert read_records(tmp_path / "r.json") == records == read_records(tmp_path / "r.jsonl")


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such data file"),
    ("{not json", "not valid JSON"),
    ('{"a": 1}', "list of record objects"),
    ("[]", "no records"),
])
def test_unreadable_data_files(tmp_path, content, message):
    path = tmp_path / "data.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TrainingDataError, match=message):
        read_records(path)


def test_record_to_item(tmp_path):
    record = {**rl_record(7, "./videos/a.mp4"), "solution": "<answer> B </answer>"}
    item = record_to_item(record, tmp_path)
    assert (item.task, item.id, item.answer, item.answer_type) == ("unit", "7", "B",
                                                                   "multiple choice")
    assert item.options == ("A. a red ball", "B. a blue car")
    assert item.media == tmp_path / "videos" / "a.mp4" and item.media_type == "video"
    assert build_prompt(item, "p2r").startswith("What moves across the room?Options:\nA. a red")


@pytest.mark.parametrize(("change", "message"), [
    ({"path": ""}, r"record 3 \(problem_id 5\): missing fields \['path'\]"),
    ({"data_type": "audio"}, "data_type 'audio'"),
    ({"problem_type": "essay"}, "problem_type 'essay'"),
    ({"options": "A, B"}, "options must be a list"),
])
def test_bad_records_are_named(tmp_path, change, message):
    with pytest.raises(TrainingDataError, match=message):
        record_to_item({**rl_record(5, "a.mp4"), **change}, tmp_path, index=3)


def test_sft_target_from_output_or_parts():
    record = cot_record(1, "a.mp4")
    assert process_aware_target(record) == (
        "<observation>A red ball rolls from the left wall to the right wall.</observation>\n"
        "<think>The moving object is the red ball, option A.</think>\n<answer>A</answer>")
    output = "<observation>o</observation><think>t</think><answer>B</answer>"
    assert process_aware_target({**record, "output": output}) == output
    broken = {**record, "output": "<think>t</think>", "observation": ""}
    with pytest.raises(TrainingDataError, match="needs a well-formed 'output'"):
        process_aware_target(broken)


def test_process_agnostic_sft_target_has_no_observation(tmp_path):
    record = cot_record(1, "a.mp4")
    expected = "<think>The moving object is the red ball, option A.</think>\n<answer>A</answer>"
    assert think_answer_target(record) == expected
    assert sft_rows([record], tmp_path, process_aware=False)[0]["target"] == expected
    with pytest.raises(TrainingDataError, match="needs non-empty 'process'"):
        think_answer_target({**record, "process": ""})


def test_sft_collator_masks_the_prompt_and_batches_videos_and_images(processor, media):
    records = [cot_record(1, "clip0.mp4"), cot_record(2, "clip1.mp4"),
               cot_record(3, "picture.png", data_type="image")]
    rows = sft_rows(records, media)
    batch = SFTCollator(processor, RequestBuilder("p2r", TEST_POLICY))(rows)
    assert batch["input_ids"].shape[0] == 3
    assert batch["video_grid_thw"].shape == (2, 3) and batch["image_grid_thw"].shape == (1, 3)
    tokenizer = processor.tokenizer
    for row, ids, labels in zip(rows, batch["input_ids"], batch["labels"], strict=True):
        kept = labels[labels != -100]
        assert tokenizer.decode(kept) == row["target"] + "<|im_end|>\n"
        # every label kept is the token itself; everything before the reply is masked
        first = int((labels != -100).nonzero()[0])
        assert torch.equal(ids[first:first + len(kept)], kept)
        assert tokenizer.decode(ids[:first]).endswith("<|im_start|>assistant\n")


def test_sft_collator_skips_unreadable_media(processor, media):
    rows = sft_rows([cot_record(1, "clip0.mp4"), cot_record(2, "broken.mp4")], media)
    collator = SFTCollator(processor, RequestBuilder("p2r", TEST_POLICY))
    assert collator(rows)["input_ids"].shape[0] == 1
    assert collator.skipped == 1
    with pytest.raises(TrainingMediaError, match="unit/2"):
        collator(rows[1:])


def test_reply_labels_need_the_assistant_header():
    with pytest.raises(ValueError, match="rows \\[1\\]"):
        reply_labels(torch.tensor([[1, 2, 3, 4], [1, 1, 1, 1]]), torch.ones(2, 4), [2, 3])


def test_rollout_collator_encodes_each_prompt_once(processor, media):
    rows = rl_rows([rl_record(1, "clip0.mp4"), rl_record(2, "clip1.mp4")], media)
    repeated = [rows[0], rows[0], rows[1], rows[1]]  # GRPO's groups
    out = RolloutCollator(processor, RequestBuilder("p2r", TEST_POLICY))(repeated)
    encodings = [row["rollout"] for row in out]
    assert encodings[0] is encodings[1] and encodings[2] is encodings[3]
    assert encodings[0] is not encodings[2]
    video_pad = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    for encoding in (encodings[0], encodings[2]):
        visual = encoding.visual
        assert visual.kind == "video" and visual.pixel_values.shape[0] == visual.grid_thw.prod()
        assert encoding.prompt_ids.count(video_pad) == visual.grid_thw.prod() // 4
        assert visual.second_per_grid_t == pytest.approx(2 / 4)  # 4 frames over 1 s
    assert not torch.equal(encodings[0].visual.pixel_values, encodings[2].visual.pixel_values)
    assert item_from_row(out[2]).id == "2"


def test_rollout_collator_names_an_unreadable_item(processor, media):
    rows = rl_rows([rl_record(9, "broken.mp4")], media)
    with pytest.raises(TrainingMediaError, match="unit/9"):
        RolloutCollator(processor, RequestBuilder("p2r", TEST_POLICY))(rows)
