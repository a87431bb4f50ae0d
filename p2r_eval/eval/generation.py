"""Running a backend over items in batches, one failing item never failing its batch mates:
the public helpers that the evaluation loop and p2r-train's CoT annotation share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from p2r_eval.core.items import Item
from p2r_eval.core.request import Request
from p2r_eval.models.base import Backend

T = TypeVar("T")


def batched(stream: Iterable[T], size: int) -> Iterator[list[T]]:
    """``stream`` in lists of ``size`` (the last one shorter), read lazily."""
    batch: list[T] = []
    for element in stream:
        batch.append(element)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def generate_isolated(
    backend: Backend, ready: Sequence[tuple[Item, Request]]
) -> Iterator[tuple[Item, str | None, str | None]]:
    """Yield ``(item, output, error)``; a backend failure on a batch is retried item by item,
    so one bad item cannot take its batch mates down with it."""
    try:
        outputs = backend.generate([request for _, request in ready])
    except Exception as error:  # any backend failure becomes per-item errors
        if len(ready) == 1:
            item = ready[0][0]
            yield item, None, f"{item.task}/{item.id}: {type(error).__name__}: {error}"
            return
        for pair in ready:
            yield from generate_isolated(backend, [pair])
        return
    for (item, _), output in zip(ready, outputs, strict=True):
        yield item, output, None
