"""p2r inside lmms-eval (docs/lmms-eval.md).

- :mod:`p2r_eval.interop.lmms_model`: the ``p2r`` model, any p2r model spec run by p2r's
  backend on frames from p2r's sampler; lmms-eval finds it through the ``lmms_eval.models``
  entry point, whose payload is :func:`lmms_model_manifest`.
- :mod:`p2r_eval.interop.lmms_docs`: p2r's items as lmms-eval documents, and the task
  functions (prompt, visual, scoring, aggregation) that the YAMLs of ``lmms_tasks/`` name;
  they call p2r's own prompt builder, protocols and aggregations.
- :mod:`p2r_eval.interop.lmms_task`: the task class that loads those documents with p2r's
  task loader.

p2r never imports this package; only the two ``lmms_`` modules that subclass lmms-eval's
classes need lmms-eval installed.
"""

from __future__ import annotations

from typing import Any

LMMS_MODEL_ID = "p2r"
LMMS_MODEL_CLASS = "p2r_eval.interop.lmms_model.P2RModel"


def lmms_model_manifest() -> Any:
    """The ``lmms_eval.models`` entry point's payload, called while lmms-eval builds its model
    registry: it names the model class without importing it (nor torch)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=LMMS_MODEL_ID, simple_class_path=LMMS_MODEL_CLASS)
