"""Uncertainty for benchmark scores: bootstrap confidence intervals and paired tests.

Both work on per-item samples (:class:`Sample`: a line of ``samples/<task>.jsonl`` as the
results contract reads it, or a :class:`ScoredItem`), with an ``id``, a ``score`` in [0, 1] or
``None``, and the ``answer_type`` and ``meta`` aggregations group by. Items whose
score is ``None`` (an error, or a judge still needed) are excluded before resampling; every
result says how many were excluded.

The task score is not always a plain mean (VSI-Bench averages the multiple-choice mean and
the regression mean under the Video-R1 protocol, and the means of its question-type
categories under the authors'), so the statistic is an ``aggregate`` function of a list of
samples, recomputed on every resample. :class:`GroupMeanAggregate` covers every shape in use
(means of group means, groups possibly nested; a plain mean has no group); each task's is
defined with its aggregation in :mod:`p2r_eval.benchmarks.protocols`, which computes the reported
score
with the same object. It also resamples vectorised, which keeps 10,000 resamples of a
5,000-item benchmark to about a second; any other callable works too, through a plain loop.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any, Protocol

import numpy as np


class Sample(Protocol):
    """What the statistics read of one item's sample (read-only attributes):
    :class:`p2r_eval.eval.results.Sample` and :class:`ScoredItem` both have them."""

    @property
    def id(self) -> str | int: ...
    @property
    def score(self) -> float | None: ...
    @property
    def answer_type(self) -> str | None: ...
    @property
    def meta(self) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True)
class ScoredItem:
    """One item's score with what aggregations group it by, for a score computed in memory
    (outside a samples file)."""

    id: str | int
    score: float | None
    answer_type: str | None = None
    meta: Mapping[str, Any] | None = None


Aggregate = Callable[[Sequence[Sample]], float]

DEFAULT_CI_RESAMPLES = 2000
DEFAULT_TEST_RESAMPLES = 10000
_CHUNK_CELLS = 4_000_000  # resample indices held in memory at once (rows × items)


GroupPath = tuple[str, ...]
"""A sample's groups, outermost first: ``()`` for a plain mean, ``("mean_mra",)`` for one
level, ``("question_type/object_rel_direction", "object_rel_direction_easy")`` for two."""


class GroupMeanAggregate:
    """The mean of group means, groups possibly nested: a group's value is the mean of its
    subgroups' values, a leaf group's the mean score of its samples; groups without samples
    are skipped. A task's reported score and its bootstrap statistic are both this object.

    ``groups_of`` maps a sample to its :data:`GroupPath` (the same length for every sample),
    or ``None`` to leave the sample out. No group at all gives the plain mean.
    """

    def __init__(self, groups_of: Callable[[Sample], GroupPath | None], description: str) -> None:
        self.groups_of = groups_of
        self.description = description

    def __repr__(self) -> str:
        return f"GroupMeanAggregate({self.description})"

    def __call__(self, samples: Sequence[Sample]) -> float:
        value = self.percent(samples, scale=1.0)
        if value is None:
            raise ValueError("cannot aggregate an empty list of samples")
        return value

    def percent(self, samples: Sequence[Sample], *, scale: float = 100.0) -> float | None:
        """The aggregate in percent (``None`` when no sample is in a group). Each leaf
        group's mean is scaled before the groups are averaged, so the score is the mean of the
        group percents a breakdown shows."""
        levels = self._levels(samples, scale)
        return levels[0].get(()) if levels else None

    def group_percents(self, samples: Sequence[Sample]) -> dict[str, float]:
        """The outermost groups' values in percent, by name (empty without groups)."""
        levels = self._levels(samples, 100.0)
        if len(levels) < 2:
            return {}
        return {path[0]: value for path, value in sorted(levels[1].items())}

    def _levels(self, samples: Sequence[Sample], scale: float) -> list[dict[GroupPath, float]]:
        """Every group's value, per depth (``[root, outermost groups, ..., leaves]``); empty
        when no sample is in a group."""
        leaves: dict[GroupPath, list[float]] = defaultdict(list)
        for sample in samples:
            path = self.groups_of(sample)
            if path is not None:
                leaves[path].append(_score(sample))
        if not leaves:
            return []
        depth = self._depth(leaves)
        levels = [{path: scale * fmean(scores) for path, scores in leaves.items()}]
        for level in range(depth - 1, -1, -1):
            children: dict[GroupPath, list[float]] = defaultdict(list)
            for path, value in levels[0].items():
                children[path[:level]].append(value)
            levels.insert(0, {path: fmean(values) for path, values in children.items()})
        return levels

    def _depth(self, paths: Iterable[GroupPath]) -> int:
        depths = {len(path) for path in paths}
        if len(depths) != 1:
            raise ValueError(f"{self!r}: group paths of different lengths {sorted(depths)}")
        return depths.pop()

    def over_resamples(self, samples: Sequence[Sample], indices: np.ndarray) -> np.ndarray:
        """The aggregate of every resample at once; ``indices`` is (resamples, items)."""
        paths = [self.groups_of(sample) for sample in samples]
        leaves = sorted({path for path in paths if path is not None})
        if not leaves:
            raise ValueError("cannot aggregate samples that are in no group")
        depth = self._depth(leaves)
        leaf_index = {path: i for i, path in enumerate(leaves)}
        left_out = len(leaves)  # one extra column for the samples in no group, dropped below
        groups = np.array([left_out if p is None else leaf_index[p] for p in paths], np.int64)
        scores = np.array([_score(sample) for sample in samples], dtype=np.float64)
        n_columns = len(leaves) + 1
        rows = np.arange(indices.shape[0])[:, None]
        cells = (rows * n_columns + groups[indices]).ravel()
        size = indices.shape[0] * n_columns
        sums = np.bincount(cells, weights=scores[indices].ravel(), minlength=size)
        counts = np.bincount(cells, minlength=size)
        sums, counts = sums.reshape(-1, n_columns)[:, :-1], counts.reshape(-1, n_columns)[:, :-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        for level in range(depth - 1, -1, -1):
            parents = sorted({path[:level] for path in leaves})
            membership = np.zeros((len(leaves), len(parents)))
            for child, path in enumerate(leaves):
                membership[child, parents.index(path[:level])] = 1.0
            present = ~np.isnan(values)
            parent_sums = np.where(present, values, 0.0) @ membership
            parent_counts = present.astype(np.float64) @ membership
            with np.errstate(invalid="ignore", divide="ignore"):
                values = np.where(parent_counts > 0, parent_sums / parent_counts, np.nan)
            leaves = parents
        return values[:, 0]


def _score(sample: Sample) -> float:
    """The score of a sample an aggregate is given (only scored samples are)."""
    if sample.score is None:
        raise ValueError(f"item {sample.id!r} has no score to aggregate")
    return float(sample.score)


mean_score = GroupMeanAggregate(lambda sample: (), "mean score over items")
"""The plain mean of the item scores."""


@dataclass(frozen=True)
class ConfidenceInterval:
    """A percentile bootstrap interval, in the aggregate's units (a fraction for scores)."""

    estimate: float
    low: float
    high: float
    confidence: float
    n_resamples: int
    n_used: int
    n_excluded: int


@dataclass(frozen=True)
class PairedTest:
    """Paired bootstrap comparison of run A against run B on the items both scored.

    ``difference`` is ``score_a - score_b``; ``low``/``high`` its percentile interval;
    ``p_value`` the two-sided probability of a difference at least this large when the
    true difference is zero (the bootstrap distribution shifted to mean zero).
    """

    n_paired: int
    n_only_a: int
    n_only_b: int
    n_unscored: int
    score_a: float
    score_b: float
    difference: float
    low: float
    high: float
    confidence: float
    p_value: float
    n_resamples: int


def scored_samples(samples: Sequence[Sample]) -> tuple[list[Sample], int]:
    """The samples with a score, and how many had none (errors, judge pending)."""
    kept = [sample for sample in samples if sample.score is not None]
    return kept, len(samples) - len(kept)


def bootstrap_ci(
    samples: Sequence[Sample],
    aggregate: Aggregate = mean_score,
    *,
    n_resamples: int = DEFAULT_CI_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> ConfidenceInterval:
    """Percentile bootstrap interval of ``aggregate`` over items resampled with replacement.

    Samples whose ``score`` is ``None`` are excluded first (counted in ``n_excluded``).
    Raises ``ValueError`` when no sample has a score.
    """
    kept, excluded = scored_samples(samples)
    if not kept:
        raise ValueError(f"no scored samples to bootstrap ({excluded} without a score)")
    rng = np.random.default_rng(seed)
    values = np.concatenate(
        [
            _aggregate_rows(kept, aggregate, rows)
            for rows in _index_chunks(rng, len(kept), n_resamples)
        ]
    )
    low, high = _percentile_interval(values, confidence)
    return ConfidenceInterval(
        estimate=float(aggregate(kept)),
        low=low,
        high=high,
        confidence=confidence,
        n_resamples=n_resamples,
        n_used=len(kept),
        n_excluded=excluded,
    )


def paired_bootstrap_test(
    samples_a: Sequence[Sample],
    samples_b: Sequence[Sample],
    aggregate: Aggregate = mean_score,
    *,
    n_resamples: int = DEFAULT_TEST_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedTest:
    """Is A's score different from B's on the same items? Items are paired by ``id``.

    Only items present in both runs and scored in both enter the test; items in one run only
    are counted in ``n_only_a``/``n_only_b`` and pairs with a ``None`` score on either side in
    ``n_unscored``. Each resample draws the same items for both runs. Raises ``ValueError``
    when no item pairs, and on a duplicated id within one run.
    """
    by_id_a, by_id_b = _by_id(samples_a, "A"), _by_id(samples_b, "B")
    shared = [item_id for item_id in by_id_a if item_id in by_id_b]
    paired = [
        (by_id_a[item_id], by_id_b[item_id])
        for item_id in shared
        if by_id_a[item_id].score is not None and by_id_b[item_id].score is not None
    ]
    if not paired:
        raise ValueError(
            f"no item is scored in both runs (A has {len(by_id_a)} items, B {len(by_id_b)}, "
            f"{len(shared)} shared ids)"
        )
    side_a, side_b = [a for a, _ in paired], [b for _, b in paired]
    rng = np.random.default_rng(seed)
    differences = np.concatenate(
        [
            _aggregate_rows(side_a, aggregate, rows) - _aggregate_rows(side_b, aggregate, rows)
            for rows in _index_chunks(rng, len(paired), n_resamples)
        ]
    )
    score_a, score_b = float(aggregate(side_a)), float(aggregate(side_b))
    observed = score_a - score_b
    low, high = _percentile_interval(differences, confidence)
    return PairedTest(
        n_paired=len(paired),
        n_only_a=len(by_id_a) - len(shared),
        n_only_b=len(by_id_b) - len(shared),
        n_unscored=len(shared) - len(paired),
        score_a=score_a,
        score_b=score_b,
        difference=observed,
        low=low,
        high=high,
        confidence=confidence,
        p_value=_two_sided_p_value(differences, observed),
        n_resamples=n_resamples,
    )


def _two_sided_p_value(differences: np.ndarray, observed: float) -> float:
    """Share of null-shifted resampled differences at least as extreme as the observed one.

    Shifting the bootstrap distribution by the observed difference centres it on zero (the
    null); the +1 terms count the observed sample itself, so p is never exactly 0.
    """
    extreme = np.abs(differences - observed) >= abs(observed) - 1e-12
    return float((np.count_nonzero(extreme) + 1) / (len(differences) + 1))


def _by_id(samples: Sequence[Sample], side: str) -> dict[str, Sample]:
    by_id: dict[str, Sample] = {}
    for sample in samples:
        item_id = str(sample.id)
        if item_id in by_id:
            raise ValueError(f"run {side}: item id {item_id!r} appears twice")
        by_id[item_id] = sample
    return by_id


def _index_chunks(rng: np.random.Generator, n_items: int, n_resamples: int) -> Iterator[np.ndarray]:
    """Resample index matrices, a bounded number of rows at a time."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    rows_per_chunk = max(1, _CHUNK_CELLS // n_items)
    for start in range(0, n_resamples, rows_per_chunk):
        rows = min(rows_per_chunk, n_resamples - start)
        yield rng.integers(0, n_items, size=(rows, n_items))


def _aggregate_rows(
    samples: Sequence[Sample], aggregate: Aggregate, rows: np.ndarray
) -> np.ndarray:
    vectorised = getattr(aggregate, "over_resamples", None)
    if vectorised is not None:
        return np.asarray(vectorised(samples, rows), dtype=np.float64)
    return np.array([aggregate([samples[i] for i in row]) for row in rows], dtype=np.float64)


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)
