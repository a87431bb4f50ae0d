"""Environment workaround: make the CUDA-only torchvision wheel importable on CPU torch.

torchvision's C extension registers the operators ``torchvision::nms`` and ``qnms``; on a
CPU-only torch it cannot load, and ``import torchvision`` fails with "operator
torchvision::nms does not exist". Registering the two schemas before torchvision is first
imported lets it import; its pure-PyTorch transforms (resize, normalize) then work on CPU,
which is all transformers' Qwen2-VL video processor needs. ``ops.nms`` stays unavailable.

This file is installed into the virtual environment by ``scripts/setup_env.sh`` (with a
``.pth`` line calling :func:`install`) only on machines where torchvision does not import.
It is environment set-up, not product code: p2r itself never imports it.
"""

from __future__ import annotations

import importlib.abc
import sys

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None


def _register_schemas() -> None:
    global _library
    import torch

    if _library is None:
        _library = torch.library.Library("torchvision", "DEF")
        for schema in _SCHEMAS:
            _library.define(schema)


class _RegisterBeforeTorchvision(importlib.abc.MetaPathFinder):
    """Runs the schema registration the first time torchvision is imported."""

    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision":
            sys.meta_path.remove(self)
            _register_schemas()
        return None


def install() -> None:
    if not any(isinstance(f, _RegisterBeforeTorchvision) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterBeforeTorchvision())
