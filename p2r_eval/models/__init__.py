"""Model backends and the one place that turns a ``--model`` spec into one.

Specs:

- ``demo``: the tiny offline Qwen2.5-VL (:mod:`p2r_eval.models.demo`), built once into the
  cache, run with the hf backend;
- ``replay:FILE``: stored outputs (:mod:`p2r_eval.models.replay`);
- a local checkpoint folder, or a hub id such as ``Qwen/Qwen2.5-VL-7B-Instruct``: the hf backend
  (:mod:`p2r_eval.models.hf`). A hub id is resolved by transformers as usual: from the local
  Hugging Face cache, or downloaded when there is network access.

A vLLM backend is not part of this version. It belongs in ``p2r_eval/models/vllm.py``, a class
with the same ``Backend`` protocol, imported lazily here (vllm is an optional extra), chosen
by its own spec prefix; until then a ``vllm:`` spec is refused with that explanation.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from p2r_eval.models.base import Backend, BackendError, DecodingSettings, Request

__all__ = ["Backend", "BackendError", "DecodingSettings", "Request", "load_backend"]

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
SPEC_HELP = (
    "use 'demo', 'replay:FILE', a local model folder or a Hugging Face hub id (owner/name)"
)


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
) -> Backend:
    """The backend named by ``spec`` (see the module docs); :class:`BackendError` when
    ``spec`` names nothing usable."""
    if spec == "demo":
        from p2r_eval.models.demo import ensure_demo_model
        from p2r_eval.models.hf import HFBackend

        return HFBackend(
            ensure_demo_model(), decoding=decoding, device=device, max_pixels=max_pixels
        )
    if spec.startswith("replay:"):
        from p2r_eval.models.replay import ReplayBackend

        file = Path(spec.removeprefix("replay:")).expanduser()
        if not file.is_file():
            raise BackendError(f"replay file {file} does not exist")
        return ReplayBackend(file, decoding=decoding)
    if spec.startswith("vllm:") or spec == "vllm":
        raise BackendError("the vllm backend is not available in this version; " + SPEC_HELP)
    return load_hf_backend(spec, decoding=decoding, max_pixels=max_pixels, device=device)


def load_hf_backend(
    spec: str, *, decoding: DecodingSettings, max_pixels: int | None, device: str | None
) -> Backend:
    from p2r_eval.models.hf import HFBackend

    path = Path(spec).expanduser()
    if path.is_dir():
        return HFBackend(path, decoding=decoding, device=device, max_pixels=max_pixels)
    if path.exists():
        raise BackendError(f"{spec} is a file, not a model folder; {SPEC_HELP}")
    if looks_like_local_path(spec):
        raise BackendError(f"model {spec!r} not found: no such folder; {SPEC_HELP}")
    return HFBackend(spec, decoding=decoding, device=device, max_pixels=max_pixels)
