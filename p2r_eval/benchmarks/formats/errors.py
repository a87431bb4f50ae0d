"""Errors raised while reading annotations: all name the file, and the record and field
when there is one, so a bad annotation is fixed before any inference starts."""

from __future__ import annotations


class AnnotationError(ValueError):
    """An annotation file (or one of its records) is unusable."""

    def __init__(self, file: str, problem: str, *, record: str | None = None,
                 field: str | None = None) -> None:
        where = file
        if record is not None:
            where += f", record {record}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {problem}")
        self.file, self.problem, self.record, self.field = file, problem, record, field


class DataNotFoundError(AnnotationError):
    """No annotation file for a benchmark under the data root (and none from the hub)."""


class RecordError(ValueError):
    """A record field is missing or malformed; :mod:`~p2r_eval.benchmarks.formats.mapping` adds the
    file
    and the record to it and raises :class:`AnnotationError`."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field, self.problem = field, problem
