"""The lmms-eval task class of the p2r benchmarks (needs lmms-eval): documents come from p2r's
task loader (:func:`~p2r_eval.interop.lmms_docs.task_docs`) instead of a hub dataset, so an
lmms-eval run sees exactly the items a p2r-eval run on the same data root sees."""

from __future__ import annotations

from typing import Any

from datasets import Dataset, DatasetDict
from lmms_eval.api.task import ConfigurableTask

from p2r_eval.interop.lmms_docs import DOC_SPLIT, TaskOptions, task_docs


class P2RTask(ConfigurableTask):
    """A task YAML with ``class: !function p2r_eval.interop.lmms_task.P2RTask``; its
    ``metadata`` names the benchmark (:class:`~p2r_eval.interop.lmms_docs.TaskOptions`)."""

    def __init__(self, config: dict[str, Any]) -> None:
        # lmms-eval passes the whole YAML, its own ``class`` key included.
        super().__init__(config={key: value for key, value in config.items() if key != "class"})

    def download(self, dataset_kwargs: dict[str, Any] | None = None) -> None:
        docs = task_docs(TaskOptions.from_metadata(self.config.metadata))
        self.dataset = DatasetDict({DOC_SPLIT: Dataset.from_list(docs)})
        self.dataset_no_image = self.dataset
