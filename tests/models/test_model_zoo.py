"""Every architecture of the paper's table through the one hf path, and the model zoo.

Tiny random checkpoints of Qwen2.5-VL, Qwen2-VL and LLaVA-OneVision (built offline) generate
from real decoded video frames, images and text through the unchanged, model-agnostic
HFBackend. The zoo (zoo.yaml) matches the paper's table, its commands parse with the real
CLI, and docs/models.md shows its current table.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from p2r_eval.cli.main import build_eval_parser
from p2r_eval.cli.models import add_subcommands
from p2r_eval.cli.settings import input_policy_from_args
from p2r_eval.core.request import Request
from p2r_eval.media.synthetic_media import write_video
from p2r_eval.media.video import sample_frames
from p2r_eval.models import HUB_ID
from p2r_eval.models.base import DecodingSettings
from p2r_eval.models.hf import HFBackend, stackable_groups, stacks_videos
from p2r_eval.models.tiny import TINY_BUILDERS
from p2r_eval.models.zoo import (
    ZooError,
    eval_command,
    find_model,
    load_zoo,
    zoo_table,
)

REPO = Path(__file__).resolve().parents[2]
FAST = DecodingSettings(max_new_tokens=8)
SMALL_FRAMES = 56 * 56
MODEL_CLASSES = {
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "llava_onevision": "LlavaOnevisionForConditionalGeneration",
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=2, fps=10)


@pytest.fixture(scope="module", params=sorted(TINY_BUILDERS))
def tiny_backend(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> tuple[str, HFBackend]:
    architecture = request.param
    directory = TINY_BUILDERS[architecture](tmp_path_factory.mktemp(architecture) / "model")
    return architecture, HFBackend(directory, decoding=FAST, max_pixels=SMALL_FRAMES)


def video_request(clip: Path, item_id: str, num_frames: int) -> Request:
    sampled = sample_frames(clip, num_frames)
    return Request("zoo", item_id, "What moves?", frames=sampled.frames, fps=sampled.sample_fps)


@pytest.mark.slow
def test_each_architecture_generates_from_video_image_and_text(
    tiny_backend: tuple[str, HFBackend], clip: Path
) -> None:
    architecture, backend = tiny_backend
    assert type(backend.model).__name__ == MODEL_CLASSES[architecture]
    image = np.random.default_rng(0).integers(0, 256, size=(40, 52, 3), dtype=np.uint8)
    requests = [
        video_request(clip, "v4", 4),
        Request("zoo", "img", "What is in the picture?", image=image),
        video_request(clip, "v6", 6),  # another frame count in the same batch
        Request("zoo", "txt", "Say something.", system="You answer briefly."),
    ]
    outputs = backend.generate(requests)
    assert all(isinstance(output, str) and output for output in outputs)
    assert outputs == [backend.generate([request])[0] for request in requests]


def test_each_architecture_sees_every_sampled_frame(
    tiny_backend: tuple[str, HFBackend], clip: Path
) -> None:
    """No re-sampling by the processor: twice the frames give about twice the video tokens."""
    _, backend = tiny_backend
    video_token = backend.model.config.video_token_id

    def video_tokens(num_frames: int) -> int:
        inputs = backend.model_inputs([video_request(clip, "v", num_frames)])
        return int((inputs["input_ids"] == video_token).sum())

    four, eight = video_tokens(4), video_tokens(8)
    assert 1.5 * four <= eight <= 2 * four


def test_pixel_cap_applies_only_where_the_processor_has_one(
    tiny_backend: tuple[str, HFBackend]
) -> None:
    architecture, backend = tiny_backend
    fixed_size = architecture == "llava_onevision"
    assert backend.max_pixels == (None if fixed_size else SMALL_FRAMES)
    assert backend.fingerprint()["max_pixels"] == backend.max_pixels
    assert stacks_videos(backend.processor) is fixed_size


def test_frames_are_resized_where_decoded_only_for_qwen_video_processors(
    tiny_backend: tuple[str, HFBackend]
) -> None:
    architecture, backend = tiny_backend
    assert (backend.frame_size is None) is (architecture == "llava_onevision")


def test_stackable_groups_split_only_by_frame_count() -> None:
    frames = {n: np.zeros((n, 8, 8, 3), dtype=np.uint8) for n in (2, 4)}
    requests = [
        Request("t", "a", "?", frames=frames[4], fps=1.0),
        Request("t", "b", "?"),
        Request("t", "c", "?", frames=frames[2], fps=1.0),
        Request("t", "d", "?", frames=frames[4], fps=1.0),
    ]
    assert stackable_groups(requests, by_frame_count=False) == [[0, 1, 2, 3]]
    assert stackable_groups(requests, by_frame_count=True) == [[0, 1, 3], [2]]
    assert stackable_groups(requests[1:2], by_frame_count=True) == [[0]]
    assert stackable_groups([], by_frame_count=True) == []


def paper_rows() -> list[str]:
    table = yaml.safe_load((REPO / "leaderboards" / "main.yaml").read_text())
    return [row["name"] for group in table["groups"] for row in group["rows"]]


def test_zoo_lists_every_row_of_the_papers_table() -> None:
    assert [model.name for model in load_zoo()] == paper_rows()


def test_zoo_entries_are_loadable_settings() -> None:
    import transformers  # imported here: collection stays quick

    for model in load_zoo():
        assert model.hub_id is None or HUB_ID.match(model.hub_id), model.name
        if model.backend == "hf":
            assert hasattr(transformers, model.architecture), model.name


@pytest.mark.parametrize("model", [m for m in load_zoo() if m.backend == "hf"],
                         ids=lambda model: model.name)
def test_zoo_commands_parse_with_the_real_cli(model) -> None:
    argv = shlex.split(eval_command(model))
    assert argv[0] == "p2r-eval"
    args = build_eval_parser().parse_args(argv[1:])
    assert (args.prompt, args.protocol, args.input_policy) == (model.prompt, model.protocol,
                                                               model.input_policy)
    assert (args.frames, args.max_pixels) == (model.frames, model.max_pixels)
    policy = input_policy_from_args(args)
    assert policy.input_policy == model.input_policy
    if model.frames is not None:
        assert policy.num_frames == model.frames
    assert args.model == (model.hub_id or "CHECKPOINT_DIR")


def test_zoo_follows_the_training_formats() -> None:
    assert find_model("Video-R1").prompt == "r1"
    assert find_model("videop2r (ours)").prompt == "p2r"
    assert find_model("Qwen/Qwen2.5-VL-7B-Instruct").name == "Qwen2.5-VL-7B"
    assert eval_command(find_model("LongVA-7B")) is None
    assert {m.input_policy for m in load_zoo() if m.protocol == "video-r1"} == {"video-r1"}
    with pytest.raises(ZooError, match="no model 'GPT-5'.*Video-R1"):
        find_model("GPT-5")


def test_malformed_zoo_entries_are_named(tmp_path: Path) -> None:
    entry = {"name": "X", "hub_id": None, "architecture": "A", "backend": "hf",
             "prompt": "cot", "protocol": "video-r1", "input_policy": "uniform", "frames": 0,
             "max_pixels": None, "policy_reason": "-", "code": "-", "prompt_reason": "-"}
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump({"models": [entry]}))
    with pytest.raises(ZooError, match=r"models\[0\] \(X\): prompt 'cot'.*frames must be"):
        load_zoo(path)
    path.write_text(yaml.safe_dump({"models": [{**entry, "prompt": "r1",
                                                "input_policy": "video-r1", "frames": 16}]}))
    with pytest.raises(ZooError, match="frames and max_pixels belong to the uniform policy"):
        load_zoo(path)
    path.write_text(yaml.safe_dump({"models": [{**entry, "speed": 1}]}))
    with pytest.raises(ZooError, match="unknown fields speed"):
        load_zoo(path)


def test_models_doc_shows_the_current_zoo_table() -> None:
    assert zoo_table() in (REPO / "docs" / "models.md").read_text()


def run_models_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="p2r-eval")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_models_subcommand_prints_the_table_and_one_model(capsys) -> None:
    assert run_models_command(["models"]) == 0
    assert zoo_table() in capsys.readouterr().out
    assert run_models_command(["models", "videorft"]) == 0
    out = capsys.readouterr().out
    assert "QiWang98/VideoRFT" in out and "--prompt r1" in out
    assert run_models_command(["models", "nope"]) == 2
    assert "no model 'nope'" in capsys.readouterr().err
