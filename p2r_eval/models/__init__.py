"""Model backends and the one place that turns a ``--model`` spec into one.

Specs:

- ``demo``: the tiny offline Qwen2.5-VL trained by the toy recipe's SFT step
  (:mod:`p2r_eval.models.demo`, committed with the package);
- ``replay:FILE``: stored outputs (:mod:`p2r_eval.models.replay`);
- a local checkpoint folder, or a hub id such as ``Qwen/Qwen2.5-VL-7B-Instruct``. A hub id is
  resolved as usual: from the local Hugging Face cache, or downloaded when there is network
  access.

``backend`` chooses what runs a model spec: ``hf`` (transformers, :mod:`p2r_eval.models.hf`,
the default), ``vllm`` (vLLM's in-process engine, :mod:`p2r_eval.models.vllm_backend`,
imported only when asked for: vllm is the optional extra ``p2r[vllm]``) or ``openai`` (a model
behind OpenAI-compatible servers, :mod:`p2r_eval.models.openai_backend`; the spec is then the
served model's name, and ``endpoint`` says where the servers are). All build the same
prompts from the same sampled frames. A replay spec needs no model, so ``backend`` does not
apply to it. :mod:`p2r_eval.models.zoo` lists the recommended settings of the paper's models.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from p2r_eval.core.hub import HubUnreachableError, check_hub_reachable
from p2r_eval.core.request import Request
from p2r_eval.models.base import Backend, BackendError, DecodingSettings
from p2r_eval.models.endpoint import EndpointSettings

__all__ = ["BACKENDS", "Backend", "BackendError", "DecodingSettings", "Request", "load_backend"]

BACKENDS = ("hf", "vllm", "openai")
REPLAY_PREFIX = "replay:"
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
SPEC_HELP = (
    "use 'demo', 'replay:FILE', a local model folder or a Hugging Face hub id (owner/name)"
)


def replay_file(spec: str) -> Path | None:
    """The outputs file a ``replay:FILE`` spec names, None for any other spec."""
    if not spec.startswith(REPLAY_PREFIX):
        return None
    return Path(spec.removeprefix(REPLAY_PREFIX)).expanduser()


def looks_like_local_path(spec: str) -> bool:
    """True for specs that can only mean a path on this machine (so a missing one is an
    error, not a hub id to look up)."""
    return (
        spec.startswith((".", "/", "~"))
        or (os.sep != "/" and os.sep in spec)
        or not HUB_ID.match(spec)
    )


def load_backend(
    spec: str,
    *,
    decoding: DecodingSettings,
    max_pixels: int | None = None,
    device: str | None = None,
    backend: str = "hf",
    tensor_parallel_size: int = 1,
    endpoint: EndpointSettings | None = None,
    save_inputs: Path | None = None,
) -> Backend:
    """The backend named by ``spec`` (see the module docs), run by ``backend``;
    :class:`BackendError` when ``spec`` or ``backend`` names nothing usable.

    ``device`` is the hf backend's torch device; ``tensor_parallel_size`` the number of GPUs
    the vllm backend shards the model over (vLLM places the model itself: choose the GPUs
    with ``CUDA_VISIBLE_DEVICES``); ``endpoint`` the servers of the openai backend;
    ``save_inputs`` a folder where the hf backend writes each item's model inputs."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if save_inputs is not None and backend != "hf":
        raise BackendError("--save-inputs writes the hf backend's processor outputs; the "
                           f"{backend} backend builds its model inputs elsewhere")
    if (backend == "openai") != (endpoint is not None):
        raise BackendError("the openai backend, and only it, needs the servers' URLs "
                           "(--backend openai with --base-url URL)")
    file = replay_file(spec)
    if file is not None:
        from p2r_eval.models.replay import ReplayBackend

        if not file.is_file():
            raise BackendError(f"replay file {file} does not exist")
        return ReplayBackend(file, decoding=decoding)
    if endpoint is not None:
        from p2r_eval.models.openai_backend import OpenAIBackend

        return OpenAIBackend(spec, decoding=decoding, endpoint=endpoint, max_pixels=max_pixels)
    model_path = resolve_model(spec)
    if backend == "vllm":
        return load_vllm_backend(
            model_path, decoding=decoding, max_pixels=max_pixels, device=device,
            tensor_parallel_size=tensor_parallel_size,
        )
    from p2r_eval.models.hf import HFBackend

    return HFBackend(model_path, decoding=decoding, device=device, max_pixels=max_pixels,
                     save_inputs=save_inputs)


def resolve_model(spec: str) -> str:
    """The checkpoint a model spec names: the demo model's folder, a local folder, or a hub id
    (left for the backend to resolve)."""
    if spec == "demo":
        from p2r_eval.models.demo import demo_checkpoint

        return str(demo_checkpoint())
    if spec.startswith("vllm:"):
        raise BackendError(
            f"{spec!r}: vllm is chosen with backend='vllm' (--backend vllm), not a spec prefix; "
            + SPEC_HELP
        )
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path)
    if path.exists():
        raise BackendError(f"{spec} is a file, not a model folder; {SPEC_HELP}")
    if looks_like_local_path(spec):
        raise BackendError(f"model {spec!r} not found: no such folder; {SPEC_HELP}")
    try:
        check_hub_reachable(f"the model {spec!r}")
    except HubUnreachableError as error:
        raise BackendError(str(error)) from None
    return spec


def load_vllm_backend(
    model_path: str,
    *,
    decoding: DecodingSettings,
    max_pixels: int | None,
    device: str | None,
    tensor_parallel_size: int,
) -> Backend:
    if device not in (None, "cuda"):
        raise BackendError(
            f"the vllm backend places the model itself (device {device!r} cannot be chosen); "
            "select GPUs with CUDA_VISIBLE_DEVICES and --tensor-parallel-size"
        )
    from p2r_eval.models.vllm_backend import VLLMBackend

    return VLLMBackend(
        model_path, decoding=decoding, tensor_parallel_size=tensor_parallel_size,
        max_pixels=max_pixels,
    )
