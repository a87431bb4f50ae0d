"""The vllm backend up to the vLLM call: a stand-in ``vllm`` module records what the backend
hands to ``LLM`` and ``SamplingParams`` (vllm itself cannot be installed on CPU machines).

Checked: prompts are the hf backend's prompts, frames reach vLLM unchanged with their rate,
decoding settings and tensor parallelism map to vLLM's arguments, outputs are decoded like
the hf backend's, and a missing vllm is a clear error naming the extra to install.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from p2r_eval.core.request import Request
from p2r_eval.media.synthetic_media import write_video
from p2r_eval.media.video import sample_frames
from p2r_eval.models import load_backend
from p2r_eval.models.base import BackendError, DecodingSettings
from p2r_eval.models.demo import ensure_demo_model
from p2r_eval.models.hf import HFBackend, prompt_text
from p2r_eval.models.tiny import make_tiny_llava_onevision
from p2r_eval.models.vllm_backend import VLLMBackend

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_vllm import FakeSamplingParams, install_fake_vllm

FAST = DecodingSettings(max_new_tokens=16)
PAPER = DecodingSettings(max_new_tokens=1024, do_sample=True, temperature=0.1, top_p=0.001,
                         seed=7)
SMALL_FRAMES = 56 * 56


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    return install_fake_vllm(monkeypatch)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_demo_model(tmp_path_factory.mktemp("p2r-cache"))


@pytest.fixture(scope="module")
def hf_backend(demo_dir: Path) -> HFBackend:
    return HFBackend(demo_dir, decoding=FAST, max_pixels=SMALL_FRAMES)


@pytest.fixture(scope="module")
def requests_of_each_kind(tmp_path_factory: pytest.TempPathFactory) -> list[Request]:
    clip = write_video(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=2, fps=10)
    sampled = sample_frames(clip, 4)
    image = np.random.default_rng(0).integers(0, 256, size=(40, 52, 3), dtype=np.uint8)
    return [
        Request("demo", "vid", "What happens?", frames=sampled.frames, fps=sampled.sample_fps),
        Request("demo", "img", "What is in the picture?", image=image),
        Request("demo", "txt", "Say something.", system="You answer briefly."),
    ]


def vllm_backend(demo_dir: Path, **settings: Any) -> VLLMBackend:
    settings.setdefault("decoding", FAST)
    return VLLMBackend(demo_dir, **settings)


def test_prompts_are_the_hf_backends_and_frames_pass_unchanged(
    fake_vllm: types.ModuleType, demo_dir: Path, hf_backend: HFBackend,
    requests_of_each_kind: list[Request],
) -> None:
    backend = vllm_backend(demo_dir)
    backend.generate(requests_of_each_kind)
    (prompts, sampling_params), = backend.llm.calls
    assert sampling_params is backend.sampling_params
    assert [p["prompt"] for p in prompts] == [
        prompt_text(hf_backend.processor, request) for request in requests_of_each_kind
    ]
    assert prompts[0]["prompt"] == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>What happens?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    video = requests_of_each_kind[0]
    (frames, metadata), = prompts[0]["multi_modal_data"]["video"]
    assert frames is video.frames
    assert metadata["fps"] == video.fps and metadata["total_num_frames"] == len(video.frames)
    assert metadata["frames_indices"] == list(range(len(video.frames)))
    assert metadata["do_sample_frames"] is False
    assert prompts[0]["mm_processor_kwargs"] == {"fps": video.fps, "do_sample_frames": False}
    assert prompts[1]["multi_modal_data"] == {"image": requests_of_each_kind[1].image}
    assert "mm_processor_kwargs" not in prompts[1]
    assert set(prompts[2]) == {"prompt"}


def test_outputs_are_cut_and_decoded_like_the_hf_backend(
    fake_vllm: types.ModuleType, demo_dir: Path, hf_backend: HFBackend,
    requests_of_each_kind: list[Request],
) -> None:
    backend = vllm_backend(demo_dir)
    tokenizer = backend.processor.tokenizer
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    answer = tokenizer.encode("<think>so</think><answer>B</answer>", add_special_tokens=False)
    backend.llm.reply = answer + [end, pad, pad]
    outputs = backend.generate(requests_of_each_kind)
    assert outputs == ["<think>so</think><answer>B</answer>"] * 3
    assert backend.stop_tokens == hf_backend.stop_tokens
    assert backend.generate([]) == []


@pytest.mark.parametrize(
    ("decoding", "expected"),
    [
        (FAST, {"temperature": 0.0, "top_p": 1.0, "max_tokens": 16, "seed": 0}),
        (PAPER, {"temperature": 0.1, "top_p": 0.001, "max_tokens": 1024, "seed": 7}),
    ],
)
def test_decoding_settings_map_to_sampling_params(
    fake_vllm: types.ModuleType, demo_dir: Path, hf_backend: HFBackend,
    decoding: DecodingSettings, expected: dict[str, Any],
) -> None:
    params = vllm_backend(demo_dir, decoding=decoding).sampling_params
    assert isinstance(params, FakeSamplingParams)
    for name, value in expected.items():
        assert getattr(params, name) == value, name
    assert params.top_k == -1 and params.repetition_penalty == 1.0 and params.n == 1
    assert params.stop_token_ids == sorted(hf_backend.stop_tokens.end)
    assert params.skip_special_tokens is False


def test_load_backend_passes_tensor_parallelism_and_engine_limits(
    fake_vllm: types.ModuleType, demo_dir: Path
) -> None:
    backend = load_backend(str(demo_dir), decoding=PAPER, max_pixels=SMALL_FRAMES,
                           backend="vllm", tensor_parallel_size=2)
    assert isinstance(backend, VLLMBackend)
    llm = backend.llm
    assert llm.model == str(demo_dir)
    assert llm.tensor_parallel_size == 2
    assert llm.limit_mm_per_prompt == {"image": 1, "video": 1}
    assert llm.mm_processor_kwargs == {"max_pixels": SMALL_FRAMES}
    assert llm.seed == 7 and llm.max_model_len is None
    engine = VLLMBackend(demo_dir, decoding=FAST, max_model_len=8192,
                         gpu_memory_utilization=0.5).llm
    assert engine.max_model_len == 8192 and engine.gpu_memory_utilization == 0.5
    assert engine.mm_processor_kwargs is None


def test_fingerprint_names_the_engine_and_hashes_the_checkpoint(
    fake_vllm: types.ModuleType, demo_dir: Path, hf_backend: HFBackend
) -> None:
    fingerprint = vllm_backend(demo_dir, tensor_parallel_size=4).fingerprint()
    hf_fingerprint = hf_backend.fingerprint()
    assert fingerprint["backend"] == "vllm" and fingerprint["vllm_version"] == "0.0.fake"
    assert fingerprint["tensor_parallel_size"] == 4
    assert fingerprint["model_class"] == hf_fingerprint["model_class"]
    for key in ("weights_sha256", "config_sha256", "processor_sha256"):
        assert fingerprint[key] == hf_fingerprint[key]


def test_bad_media_is_a_named_error_before_the_engine_is_called(
    fake_vllm: types.ModuleType, demo_dir: Path
) -> None:
    backend = vllm_backend(demo_dir)
    frames = np.zeros((4, 32, 32, 3), dtype=np.float32)
    with pytest.raises(BackendError, match="demo/floats.*uint8"):
        backend.generate([Request("demo", "floats", "?", frames=frames, fps=2.0)])
    assert backend.llm.calls == []


def test_fixed_resolution_processor_gets_no_pixel_cap(
    fake_vllm: types.ModuleType, tmp_path: Path, requests_of_each_kind: list[Request]
) -> None:
    llava = make_tiny_llava_onevision(tmp_path / "llava")
    backend = VLLMBackend(llava, decoding=FAST, max_pixels=SMALL_FRAMES)
    assert backend.max_pixels is None and backend.llm.mm_processor_kwargs is None
    backend.generate(requests_of_each_kind[:1])
    (prompt,), _ = backend.llm.calls[0]
    assert prompt["prompt"].count("<video>") == 1
    assert prompt["multi_modal_data"]["video"][0][0] is requests_of_each_kind[0].frames


def test_without_vllm_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, demo_dir: Path
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail
    with pytest.raises(BackendError, match=r"pip install 'p2r\[vllm\]'"):
        load_backend(str(demo_dir), decoding=FAST, backend="vllm")


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"backend": "sglang"}, "unknown backend 'sglang'"),
        ({"backend": "vllm", "device": "cpu"}, "places the model itself"),
    ],
)
def test_load_backend_refuses_unusable_backend_settings(
    fake_vllm: types.ModuleType, demo_dir: Path, settings: dict[str, Any], problem: str
) -> None:
    with pytest.raises(BackendError, match=problem):
        load_backend(str(demo_dir), decoding=FAST, **settings)
