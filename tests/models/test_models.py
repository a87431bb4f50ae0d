"""The demo Qwen2.5-VL, the hf backend on real decoded video, the replay backend, load_backend."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from p2r_eval.core.request import Request
from p2r_eval.core.template import parse
from p2r_eval.media.synthetic_media import write_video
from p2r_eval.media.video import sample_frames
from p2r_eval.models import load_backend
from p2r_eval.models.base import BackendError, DecodingSettings
from p2r_eval.models.demo import (
    DEMO_MARKER_FILE,
    DEMO_RECIPE_VERSION,
    TAG_TOKENS,
    demo_checkpoint,
    ensure_demo_model,
    make_demo_model,
)
from p2r_eval.models.hf import HFBackend, decode_output
from p2r_eval.models.replay import ReplayBackend, ReplayFileError

FAST = DecodingSettings(max_new_tokens=16)
SMALL_FRAMES = 56 * 56  # one 2x2 group of 28-pixel patches per frame pair: fast on CPU


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("p2r-cache")
    ensure_demo_model(cache)
    return cache


@pytest.fixture(scope="module")
def demo_dir(demo_cache: Path) -> Path:
    return ensure_demo_model(demo_cache)


@pytest.fixture(scope="module")
def backend(demo_dir: Path) -> HFBackend:
    return HFBackend(demo_dir, decoding=FAST, max_pixels=SMALL_FRAMES)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=2, fps=10)


def video_request(clip: Path, item_id: str, prompt: str, num_frames: int) -> Request:
    sampled = sample_frames(clip, num_frames)
    return Request("demo", item_id, prompt, frames=sampled.frames, fps=sampled.sample_fps)


def test_demo_model_loads_back_as_qwen2_5_vl(demo_dir: Path) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(demo_dir)
    processor = AutoProcessor.from_pretrained(demo_dir)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(processor.video_processor).__name__ == "Qwen2VLVideoProcessor"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert model.config.video_token_id == processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert model.config.get_text_config().vocab_size >= len(processor.tokenizer)
    marker = json.loads((demo_dir / DEMO_MARKER_FILE).read_text())
    assert marker == {"recipe_version": DEMO_RECIPE_VERSION, "seed": 0}


def test_chat_template_renders_qwen2_vl_turns(backend: HFBackend) -> None:
    chat = [
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Why?"}]},
    ]
    text = backend.processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Why?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_process_tags_are_single_tokens_that_survive_decoding(backend: HFBackend) -> None:
    tokenizer = backend.processor.tokenizer
    for tag in TAG_TOKENS:
        ids = tokenizer.encode(tag, add_special_tokens=False)
        assert len(ids) == 1, tag
        assert ids[0] < backend.model.config.get_text_config().vocab_size
    text = "<observation>a cup</observation><think>so A</think><answer>A</answer>"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_decode_output_cuts_at_end_of_turn_and_drops_padding(backend: HFBackend) -> None:
    tokenizer = backend.processor.tokenizer
    answer = tokenizer.encode("<answer>B</answer>", add_special_tokens=False)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    ids = answer + [end] + [pad] * 3
    assert decode_output(tokenizer, ids, backend.stop_tokens) == "<answer>B</answer>"


@pytest.mark.slow
def test_generate_on_decoded_video_batched_equals_single(backend: HFBackend, clip: Path) -> None:
    requests = [
        video_request(clip, "a", "What happens in the video?", num_frames=4),
        video_request(clip, "b", "How many squares move? Answer with a number.", num_frames=6),
    ]
    batched = backend.generate(requests)
    assert all(isinstance(output, str) and output for output in batched)
    singles = [backend.generate([request])[0] for request in requests]
    assert batched == singles


def test_video_frames_are_not_resampled_and_keep_their_rate(backend: HFBackend, clip: Path) -> None:
    request = video_request(clip, "a", "Describe.", num_frames=6)
    inputs = backend.model_inputs([request])
    temporal_patch = backend.processor.video_processor.temporal_patch_size
    assert inputs["video_grid_thw"][0, 0].item() == 6 // temporal_patch
    assert inputs["second_per_grid_ts"][0].item() == pytest.approx(temporal_patch / request.fps)
    assert inputs["video_grid_thw"][0, 1:].tolist() == [4, 4]  # 48x64 frames capped at 56x56


@pytest.mark.slow
def test_image_and_text_only_requests_batch_with_video(backend: HFBackend, clip: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, size=(40, 52, 3), dtype=np.uint8)
    requests = [
        Request("demo", "img", "What is in the picture?", image=image),
        video_request(clip, "vid", "What moves?", num_frames=4),
        Request("demo", "txt", "Say something.", system="You answer briefly."),
    ]
    outputs = backend.generate(requests)
    assert outputs == [backend.generate([request])[0] for request in requests]


def test_tags_can_be_generated_and_vision_tokens_cannot(backend: HFBackend) -> None:
    """Mechanics with random weights: biasing the logits toward a tag makes the model emit it
    (and the decoded output parses); the same bias toward <|video_pad|> is suppressed."""
    tokenizer = backend.processor.tokenizer
    think = tokenizer.convert_tokens_to_ids("<think>")
    video_pad = tokenizer.convert_tokens_to_ids("<|video_pad|>")
    inputs = backend.model_inputs([Request("demo", "x", "Think.")])
    prompt_length = inputs["input_ids"].shape[1]
    for biased, expect_present in ((think, True), (video_pad, False)):
        sequences = backend.model.generate(
            **inputs, **backend.generation_kwargs(), sequence_bias={(biased,): 50.0}
        )
        new = sequences[0, prompt_length:].tolist()
        assert (biased in new) is expect_present
    text = decode_output(tokenizer, [think] * 2 + tokenizer.encode("</think>"), backend.stop_tokens)
    assert parse(text).think is not None


def test_sampling_is_reproducible_with_the_seed(demo_dir: Path) -> None:
    sampled = HFBackend(
        demo_dir,
        decoding=DecodingSettings(max_new_tokens=8, do_sample=True, temperature=1.5, seed=3),
        max_pixels=SMALL_FRAMES,
    )
    request = Request("demo", "x", "Tell me about the video.")
    assert sampled.generate([request]) == sampled.generate([request])


def test_bad_video_requests_are_named_errors(backend: HFBackend) -> None:
    frames = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(BackendError, match="demo/no-fps.*fps"):
        backend.generate([Request("demo", "no-fps", "?", frames=frames)])
    with pytest.raises(BackendError, match="demo/floats.*uint8"):
        backend.generate([Request("demo", "floats", "?", frames=frames.astype(float), fps=2.0)])


def test_fingerprint_hashes_the_checkpoint(backend: HFBackend, demo_dir: Path) -> None:
    fingerprint = backend.fingerprint()
    weights = demo_dir / "model.safetensors"
    expected = hashlib.sha256(b"model.safetensors\0" + weights.read_bytes()).hexdigest()
    assert fingerprint["weights_sha256"] == expected
    assert fingerprint["model_class"] == "Qwen2_5_VLForConditionalGeneration"
    assert fingerprint["dtype"] == "float32" and fingerprint["device"] == "cpu"
    assert fingerprint["max_pixels"] == SMALL_FRAMES
    assert fingerprint["path"] == str(demo_dir)
    assert len(fingerprint["config_sha256"]) == 64


def test_make_demo_model_is_deterministic_per_seed(tmp_path: Path, demo_dir: Path) -> None:
    def weights_hash(directory: Path) -> str:
        return hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()

    again = make_demo_model(tmp_path / "again", seed=0)
    other = make_demo_model(tmp_path / "other", seed=1)
    assert weights_hash(again) == weights_hash(demo_dir)
    assert (again / "tokenizer.json").read_bytes() == (demo_dir / "tokenizer.json").read_bytes()
    assert weights_hash(other) != weights_hash(demo_dir)
    with pytest.raises(FileExistsError):
        make_demo_model(again)


def test_ensure_demo_model_reuses_the_cache(demo_cache: Path, monkeypatch) -> None:
    def must_not_build(*args, **kwargs):
        raise AssertionError("the cached demo model was rebuilt")

    monkeypatch.setattr("p2r_eval.models.demo.make_demo_model", must_not_build)
    assert ensure_demo_model(demo_cache) == demo_cache / f"demo-model-v{DEMO_RECIPE_VERSION}"
    monkeypatch.setenv("P2R_CACHE", str(demo_cache))
    assert ensure_demo_model() == demo_cache / f"demo-model-v{DEMO_RECIPE_VERSION}"


def test_ensure_demo_model_builds_once_under_concurrent_callers(tmp_path: Path) -> None:
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_demo_model(tmp_path)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and results[0] == results[1]
    assert (results[0] / DEMO_MARKER_FILE).is_file()
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [results[0].name]


def write_lines(path: Path, *records: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_replay_returns_stored_outputs_by_task_and_id(tmp_path: Path) -> None:
    file = write_lines(
        tmp_path / "outputs.jsonl",
        {"task": "mvbench", "id": 7, "output": "<answer>B</answer>"},
        "",
        {"task": "vsibench", "id": "7", "output": "<answer>3</answer>"},
        {"task": "mvbench", "id": "7", "output": "<answer>B</answer>"},
    )
    replay = ReplayBackend(file)
    assert replay.needs_media is False
    requests = [Request("vsibench", "7", "?"), Request("mvbench", "7", "?")]
    assert replay.generate(requests) == ["<answer>3</answer>", "<answer>B</answer>"]
    fingerprint = replay.fingerprint()
    assert fingerprint["file_sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert fingerprint["entries"] == 2
    with pytest.raises(BackendError, match="'mvbench'.*'8'"):
        replay.generate([Request("mvbench", "8", "?")])


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('["task", "id"]', "expected a JSON object"),
        ('{"task": "t", "id": "1"}', "missing output"),
        ('{"task": "t", "id": 1.5, "output": "x"}', "id must be"),
        ('{"task": "t", "id": "1", "output": null}', "output must be a string"),
    ],
)
def test_replay_rejects_malformed_lines_naming_file_and_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    file = write_lines(tmp_path / "bad.jsonl", {"task": "t", "id": "0", "output": "ok"}, line)
    with pytest.raises(ReplayFileError, match=rf"bad\.jsonl:2: {problem}"):
        ReplayBackend(file)


def test_replay_rejects_conflicting_duplicates(tmp_path: Path) -> None:
    file = write_lines(
        tmp_path / "dup.jsonl",
        {"task": "t", "id": "1", "output": "A"},
        {"task": "t", "id": 1, "output": "B"},
    )
    with pytest.raises(ReplayFileError, match=r"dup\.jsonl:2: .*line 1"):
        ReplayBackend(file)


def test_load_backend_resolves_specs(demo_cache: Path, demo_dir: Path, tmp_path: Path,
                                     monkeypatch) -> None:
    monkeypatch.setenv("P2R_CACHE", str(demo_cache))
    demo = load_backend("demo", decoding=FAST, max_pixels=SMALL_FRAMES)
    assert isinstance(demo, HFBackend) and demo.model_path == str(demo_checkpoint())
    assert demo.decoding() == FAST
    assert isinstance(load_backend(str(demo_dir), decoding=FAST), HFBackend)
    file = write_lines(tmp_path / "out.jsonl", {"task": "t", "id": "1", "output": "A"})
    assert isinstance(load_backend(f"replay:{file}", decoding=FAST), ReplayBackend)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("replay:{tmp}/missing.jsonl", "replay file .* does not exist"),
        ("{tmp}/no-such-model", "not found"),
        ("./no-such-model", "not found"),
        ("no-such-model", "not found"),
        ("{tmp}/a-file.txt", "is a file"),
        ("vllm:Qwen/Qwen2.5-VL-7B-Instruct", "backend=.vllm. .*not a spec prefix"),
    ],
)
def test_load_backend_errors_explain_the_spec(tmp_path: Path, spec: str, problem: str) -> None:
    (tmp_path / "a-file.txt").write_text("not a model")
    with pytest.raises(BackendError, match=problem):
        load_backend(spec.format(tmp=tmp_path), decoding=FAST)
