"""--save-inputs round trip, and what a run records about its inputs and decoding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from p2r_eval.benchmarks.registry import load_task
from p2r_eval.cli.main import main
from p2r_eval.core.answer_types import answer_type
from p2r_eval.core.items import Item
from p2r_eval.core.prompts import R1_QUESTION_TEMPLATE, build_prompt
from p2r_eval.media import synthetic_media
from p2r_eval.media.input_policies import named_frame_policy
from p2r_eval.media.requests import RequestBuilder
from p2r_eval.media.saved_inputs import inputs_path, load_model_inputs, save_model_inputs
from p2r_eval.media.video import FramePolicy
from p2r_eval.models import BackendError, load_backend
from p2r_eval.models.base import DecodingSettings
from p2r_eval.models.hf import HFBackend

TASK = "mvbench"


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A demo run of two items under the default (video-r1) policy, saving its inputs."""
    root = tmp_path_factory.mktemp("save-inputs")
    output, inputs = root / "run", root / "inputs"
    assert main(["--model", "demo", "--tasks", TASK, "--limit", "2", "--max-new-tokens", "4",
                 "--batch-size", "2", "--quiet", "--output", str(output),
                 "--save-inputs", str(inputs)]) == 0
    return output, inputs


@pytest.mark.slow
def test_saved_inputs_are_the_processor_outputs_of_each_item(
    saved_run: tuple[Path, Path], model_dir: Path
) -> None:
    _, inputs = saved_run
    policy = named_frame_policy("video-r1")
    backend = HFBackend(model_dir, decoding=DecodingSettings(max_new_tokens=4),
                        max_pixels=policy.processor_max_pixels)
    builder = RequestBuilder("p2r", policy)
    items = load_task(TASK).items[:2]
    assert sorted(p.name for p in (inputs / TASK).iterdir()) == sorted(
        inputs_path(inputs, TASK, item.id).name for item in items)
    for item in items:
        saved = load_model_inputs(inputs_path(inputs, TASK, item.id))
        expected = backend.processor_outputs([builder(item)])
        assert set(saved) == set(expected) >= {"input_ids", "attention_mask",
                                               "pixel_values_videos", "video_grid_thw",
                                               "second_per_grid_ts"}
        for name, tensor in expected.items():
            assert torch.equal(saved[name], torch.as_tensor(tensor)), (item.id, name)


def test_a_run_records_its_input_policy_and_only_the_decoding_that_ran(
    saved_run: tuple[Path, Path],
) -> None:
    settings = json.loads((saved_run[0] / "results.json").read_text())["settings"]
    assert settings["frame_policy"] == named_frame_policy("video-r1").as_dict()
    assert settings["frame_policy"]["input_policy"] == "video-r1"
    decoding = settings["decoding"]
    assert decoding["do_sample"] is False
    assert decoding["temperature"] is None and decoding["top_p"] is None


def test_item_ids_become_safe_file_names(tmp_path: Path) -> None:
    tensors = {"input_ids": torch.tensor([[1, 2, 3]]), "second_per_grid_ts": [0.5]}
    path = save_model_inputs(tmp_path, "vsibench", "../scene 7/q?1", tensors)
    assert path.parent == tmp_path / "vsibench"
    assert path.name == "..%2Fscene%207%2Fq%3F1.safetensors"
    loaded = load_model_inputs(path)
    assert torch.equal(loaded["input_ids"], tensors["input_ids"])
    assert torch.equal(loaded["second_per_grid_ts"], torch.tensor([0.5]))


def test_save_inputs_is_refused_for_backends_that_build_inputs_elsewhere(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="--save-inputs"):
        load_backend("demo", decoding=DecodingSettings(), backend="vllm",
                     save_inputs=tmp_path)


def test_decoding_settings_hold_only_what_is_used() -> None:
    assert DecodingSettings().as_dict()["temperature"] is None
    assert DecodingSettings(do_sample=True, temperature=0.7).top_p == 1.0
    with pytest.raises(ValueError, match="greedy decoding takes no temperature"):
        DecodingSettings(temperature=1.0)
    with pytest.raises(ValueError, match="temperature > 0"):
        DecodingSettings(do_sample=True, temperature=0.0)


def test_multiple_choice_without_options_keeps_video_r1s_header() -> None:
    item = Item(task="mvbench", id="1", question="Which way?", answer="A",
                answer_type="multiple choice", options=(), media=None, media_type="none")
    # Video-R1's eval_bench.py: problem + "Options:\n" + one line per option, even for none.
    question = "Which way?" + "Options:\n" + "".join(option + "\n" for option in item.options)
    suffix = answer_type("multiple choice").prompt_suffix
    expected = R1_QUESTION_TEMPLATE.format(Question=question) + suffix
    assert question == "Which way?Options:\n"
    assert build_prompt(item, "r1") == expected


@pytest.mark.slow
def test_a_uniform_run_resizes_high_resolution_frames_where_it_decodes_with_the_processors_inputs(
    tmp_path: Path, model_dir: Path
) -> None:
    """The frames of a 4K video are resized to the processor's size once decoded (the frame
    cache holds them at that size), a 640x360 video's are left to the processor, and both
    items' inputs are the processor's own from the decoded frames."""
    root = tmp_path / "root"
    root.mkdir()
    # 6 frames of 3840x2160 take 149 MB: over RESIZE_WHERE_DECODED_FROM_BYTES; of 640x360, 4 MB
    synthetic_media.write_video(root / "uhd.mp4", seconds=2, fps=3, width=3840, height=2160)
    synthetic_media.write_video(root / "small.mp4", seconds=2, width=640, height=360)
    records = [{"problem_id": number, "problem": "What moves?", "data_type": "video",
                "options": ["A. left", "B. right"], "problem_type": "multiple choice",
                "solution": "<answer>A</answer>", "path": f"./{name}"}
               for number, name in enumerate(("uhd.mp4", "small.mp4"), start=1)]
    (root / f"eval_{TASK}.json").write_text(json.dumps(records))
    cache, inputs = tmp_path / "frames", tmp_path / "inputs"
    assert main(["--model", str(model_dir), "--tasks", TASK, "--data-root", str(root),
                 "--frames", "6", "--max-pixels", "200704", "--max-new-tokens", "2", "--quiet",
                 "--frame-cache", str(cache), "--save-inputs", str(inputs),
                 "--output", str(tmp_path / "run")]) == 0
    shapes = sorted(np.load(entry).shape for entry in (cache / "frames").glob("*.npy"))
    assert shapes == [(6, 336, 588, 3), (6, 360, 640, 3)]
    policy = FramePolicy(num_frames=6, max_pixels=200_704)
    backend = HFBackend(model_dir, decoding=DecodingSettings(max_new_tokens=2),
                        max_pixels=200_704)
    for item in load_task(TASK, root).items:
        at_decoded_size = RequestBuilder("p2r", policy)(item)
        assert at_decoded_size.frames is not None
        expected = backend.processor_outputs([at_decoded_size])
        saved = load_model_inputs(inputs_path(inputs, TASK, item.id))
        for name, tensor in expected.items():
            assert torch.equal(saved[name], torch.as_tensor(tensor)), (item.media, name)
