"""The evaluation loop: items → requests → outputs → parsed, scored samples → task scores.

Each phase is a small function; :func:`run_evaluation` only wires them together. Every
finished item is appended to the run store before the next batch starts, so an interrupted
run resumes where it stopped and never generates an item twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

from p2r_eval.benchmarks.protocols import NO_JUDGE_NOTE, ItemScore, aggregate_task, score_item
from p2r_eval.benchmarks.registry import LoadedTask, load_task
from p2r_eval.core import provenance
from p2r_eval.core.items import Item
from p2r_eval.core.prompts import (
    REQUIRED_TAGS,
    build_prompt,
    prompt_hash,
    question_with_options,
    style_hash,
)
from p2r_eval.core.request import Request
from p2r_eval.core.scoring import extract_answer
from p2r_eval.core.template import parse
from p2r_eval.eval.generation import batched, generate_isolated
from p2r_eval.eval.results import (
    RESULTS_SCHEMA,
    JudgeRecord,
    MetaValue,
    ModelRecord,
    RunResults,
    RunSettings,
    Sample,
    Segments,
    TaskEntry,
)
from p2r_eval.eval.run_identity import (
    RESUMABLE_SETTINGS,
    RunIdentity,
    identity_differences,
    outcome_settings,
    recorded_identity,
    task_data_identity,
)
from p2r_eval.eval.runstore import RunStore, RunStoreError
from p2r_eval.eval.shards import Shard, shard_items
from p2r_eval.judge.base import JudgeError, RetriesExhausted
from p2r_eval.media.requests import (
    DEFAULT_DECODE_TIMEOUT_S,
    DecodePool,
    MediaError,
    RequestBuilder,
    grouped_by_video,
    prefetch_requests,
)
from p2r_eval.media.video import FramePolicy, ProcessorFrameSize
from p2r_eval.models import REPLAY_PREFIX, replay_file
from p2r_eval.models.base import Backend, DecodingSettings
from p2r_eval.report.analysis import ProcessAnalysis, analyze_samples, render_analysis_table

log = logging.getLogger(__name__)

JUDGE_PENDING_CHUNK = 64
"""Judge-pending items scored (concurrently) and stored per chunk, so progress is kept."""

JUDGE_FAILED_NOTE = "not scored: judge failed"


@dataclass(frozen=True)
class EvalSettings:
    """Everything that decides what a run computes; recorded in results.json."""

    model_spec: str
    tasks: tuple[str, ...]
    protocol: str = "video-r1"
    prompt_style: str = "p2r"
    frame_policy: FramePolicy = field(default_factory=FramePolicy)
    decoding: DecodingSettings = field(default_factory=DecodingSettings)
    data_root: Path | None = None
    limit: int | None = None
    batch_size: int = 1
    retry_errors: bool = False
    frame_cache: Path | None = None
    decode_workers: int = 0
    decode_timeout_s: float = DEFAULT_DECODE_TIMEOUT_S
    shard: Shard | None = None
    attribute_errors: bool = False


@dataclass
class TaskOutcome:
    """What one task's pass produced: its score entry for results.json and the markdown of
    its process analysis."""

    name: str
    entry: TaskEntry
    analysis_markdown: str


def sample_record(item: Item, style: str, output: str, scored: ItemScore) -> Sample:
    """The samples/<task>.jsonl line of a generated item."""
    segments = parse(output)
    return Sample(
        id=item.id,
        answer_type=item.answer_type,
        prompt_hash=prompt_hash(build_prompt(item, style)),
        output=output,
        segments=Segments(
            observation=segments.observation,
            think=segments.think,
            answer=segments.answer,
            deviations=segments.deviations(REQUIRED_TAGS[style]),
        ),
        extracted=scored.extracted,
        score=scored.score,
        rule=scored.rule,
        note=scored.note,
        judge_reply=scored.judge_reply,
        error=None,
        options=list(item.options),
        meta=_jsonable_meta(item.meta),
    )


def error_record(item: Item, message: str) -> Sample:
    """The samples line of an item that could not be generated (the run goes on)."""
    return Sample(
        id=item.id,
        answer_type=item.answer_type,
        output=None,
        score=None,
        error=message,
        meta=_jsonable_meta(item.meta),
    )


def _jsonable_meta(meta: dict[str, Any]) -> dict[str, MetaValue]:
    return {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool, type(None)))}


def pending_items(
    items: Sequence[Item], finished: dict[str, Sample], retry_errors: bool
) -> list[Item]:
    """Items with no sample yet (and, with ``retry_errors``, those whose sample is an error)."""
    return [
        item
        for item in items
        if item.id not in finished or (retry_errors and finished[item.id].error)
    ]


@dataclass
class SampleWriter:
    """Scores finished generations and appends them (or errors) to one task's samples."""

    task: str
    store: RunStore
    finished: dict[str, Sample]
    settings: EvalSettings
    judge: Any
    bar: Any
    item_hashes: dict[str, str]

    def write_outputs(self, generated: Sequence[tuple[Item, str]]) -> None:
        """Score and append a batch of generations, in order. With a judge, the items are
        scored concurrently (up to the judge's concurrency): judge-graded items then wait on
        the judge together, not one after another."""
        def score(pair: tuple[Item, str]) -> ItemScore:
            return score_safely(pair[0], pair[1], self.settings.protocol, self.judge)

        concurrency = getattr(self.judge.judge, "concurrency", 1) if self.judge else 1
        workers = min(len(generated), concurrency)
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="score") as pool:
                scores = list(pool.map(score, generated))
        else:
            scores = [score(pair) for pair in generated]
        for (item, output), scored in zip(generated, scores, strict=True):
            self._append(item, sample_record(item, self.settings.prompt_style, output, scored))

    def write_error(self, item: Item, message: str) -> None:
        log.warning("%s", message)
        self._append(item, error_record(item, message))

    def _append(self, item: Item, sample: Sample) -> None:
        sample.item_sha256 = self.item_hashes[item.id]
        self.store.append_sample(self.task, sample)
        self.finished[item.id] = sample
        self.bar.update(1)


def score_safely(item: Item, output: str, protocol: str, judge: Any) -> ItemScore:
    """Score an output; a judge failure leaves the item unscored (its output is kept, and a
    later run with a working judge scores it) instead of losing the generation."""
    try:
        return score_item(item, output, protocol, judge=judge)
    except Exception as error:  # any judge failure: keep the output, score later
        return ItemScore(None, extract_answer(output), "judge",
                         f"{JUDGE_FAILED_NOTE}: {type(error).__name__}: {error}")


def awaits_judge(sample: Sample) -> bool:
    """A generated item a judge has yet to grade: none was configured, or it failed."""
    note = sample.note or ""
    return sample.score is None and note.startswith((NO_JUDGE_NOTE, JUDGE_FAILED_NOTE))


class GradingJudge:
    """The judge as one run's item rules use it.

    Once a request has spent the judge's whole retry budget (the service is down or out of
    quota), no further item is sent to it in this run: those items keep their outputs,
    unscored with the reason, and running the same command again scores them. Without this,
    every remaining judge-graded item would spend a full retry budget (a minute or more with
    the default backoff) in turn while the model waits.
    """

    def __init__(self, judge: Any) -> None:
        self.judge = judge
        self.gave_up: str | None = None

    def grade(self, question: str, reference: str, prediction: str) -> Any:
        if self.gave_up is not None:
            raise JudgeError(f"not sent, the judge gave up earlier in this run: {self.gave_up}")
        try:
            return self.judge.grade(question, reference, prediction)
        except RetriesExhausted as error:
            self.gave_up = str(error)
            raise


def judge_pending(items: Sequence[Item], finished: dict[str, Sample]) -> list[Item]:
    """Generated items left unscored (no judge then, or the judge failed): score them now."""
    return [item for item in items if item.id in finished and awaits_judge(finished[item.id])]


def request_builder(settings: EvalSettings, needs_media: bool,
                    frame_size: ProcessorFrameSize | None = None) -> RequestBuilder:
    """How a run's items become requests, for a backend that does or does not take media,
    with its processor's ``frame_size`` where frames can be resized to it after decoding."""
    policy = settings.frame_policy.resized_where_decoded(frame_size)
    return RequestBuilder(settings.prompt_style, policy, needs_media, settings.frame_cache,
                          settings.decode_timeout_s)


def prefetch_depth(settings: EvalSettings) -> int:
    """How many items are decoded ahead of the model at most."""
    return max(2 * settings.decode_workers, 2 * settings.batch_size)


def task_items(loaded: LoadedTask, settings: EvalSettings) -> list[Item]:
    """The items of a task this run covers (its limit, its shard)."""
    return shard_items(limited(loaded.items, settings.limit), settings.shard)


def start_decoding_early(
    pool: DecodePool, settings: EvalSettings, loaded_tasks: Sequence[LoadedTask], output: Path
) -> None:
    """Start decoding the items the run in ``output`` will generate first in ``pool``, before
    the model is loaded, for a backend that takes media: the model's loading and that
    decoding then overlap (see :meth:`DecodePool.start_early`). Only a guess at what the run
    will do (it reads the run's samples without its lock); a request started for nothing is
    dropped, never used wrongly."""
    store = RunStore(output)
    first: list[Item] = []
    for loaded in loaded_tasks:
        finished = store.load_samples(loaded.name, repair=False)
        order = grouped_by_video(task_items(loaded, settings))
        first += pending_items(order, finished, settings.retry_errors)
        if first:
            break
    pool.start_early(first, request_builder(settings, True))


def evaluate_task(
    loaded: LoadedTask,
    backend: Backend,
    store: RunStore,
    settings: EvalSettings,
    judge: Any = None,
    show_progress: bool = True,
    decode_pool: DecodePool | None = None,
) -> TaskOutcome:
    """Generate and score every pending item of one task, then aggregate all its samples.
    ``judge``: a :class:`GradingJudge` (one per run, see there) or a plain judge;
    ``decode_pool``: the run's decode workers (else, with ``settings.decode_workers``, the
    task starts its own)."""
    started = time.monotonic()
    if judge is not None and not isinstance(judge, GradingJudge):
        judge = GradingJudge(judge)
    items = task_items(loaded, settings)
    finished = store.load_samples(loaded.name)
    todo = pending_items(grouped_by_video(items), finished, settings.retry_errors)
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=loaded.name, unit="item",
               disable=not show_progress, dynamic_ncols=True)
    hashes = loaded.item_hashes
    check_samples_match_items(store, loaded.name, finished, hashes)
    writer = SampleWriter(loaded.name, store, finished, settings, judge, bar, hashes)
    if judge is not None:
        pending = [(item, finished[item.id].output or "")
                   for item in judge_pending(items, finished)]
        for start in range(0, len(pending), JUDGE_PENDING_CHUNK):
            writer.write_outputs(pending[start : start + JUDGE_PENDING_CHUNK])
    builder = request_builder(settings, backend.needs_media, backend.frame_size)
    stream = prefetch_requests(todo, builder, workers=settings.decode_workers,
                               depth=prefetch_depth(settings), pool=decode_pool)
    for batch in batched(stream, settings.batch_size):
        for item, request in batch:
            if isinstance(request, MediaError):
                writer.write_error(item, str(request))
        ready = [(item, request) for item, request in batch if isinstance(request, Request)]
        generated: list[tuple[Item, str]] = []
        for item, output, error in generate_isolated(backend, ready) if ready else ():
            if output is not None:
                generated.append((item, output))
            else:
                writer.write_error(item, str(error))
        writer.write_outputs(generated)
    bar.close()
    # The score describes the samples file, not this process's memory of it: a file deleted
    # or cut behind the run's back leaves the task incomplete (and resumable), never a score
    # of items the file lacks.
    finished = store.load_samples(loaded.name)
    verdicts = attribution_verdicts(items, finished, judge) if settings.attribute_errors else None
    if verdicts is not None:
        store.write_verdicts(loaded.name, {item_id: verdict.as_dict() if verdict else None
                                           for item_id, verdict in verdicts.items()})
    entry, analysis = task_entry(loaded, items, finished, settings.protocol,
                                 settings.prompt_style, round(time.monotonic() - started, 3),
                                 verdicts)
    return TaskOutcome(loaded.name, entry, render_analysis_table(analysis))


def check_samples_match_items(
    store: RunStore, task: str, finished: dict[str, Sample], hashes: dict[str, str]
) -> None:
    """Refuse to resume from samples made for other items (the data changed since): each
    sample carries its item's content hash."""
    stale = [item_id for item_id, sample in finished.items()
             if item_id in hashes and sample.item_sha256 not in (None, hashes[item_id])]
    if stale:
        shown = ", ".join(repr(item_id) for item_id in stale[:5])
        raise RunStoreError(
            f"{store.samples_path(task)} answers different items than the data now holds "
            f"({len(stale)} items changed since, e.g. {shown}); choose another --output")


def attribution_verdicts(
    items: Sequence[Item], finished: dict[str, Sample], grading: GradingJudge
) -> dict[str, Any]:
    """Observation-sufficiency verdicts for the wrong answers, for error attribution (only
    the cached ones once the judge has given up in this run)."""
    from p2r_eval.judge import JudgeItemsFailed, SufficiencyQuery

    judge = grading.judge
    observations = {item_id: wrong_answer_observation(sample)
                    for item_id, sample in finished.items()}
    queries = [SufficiencyQuery(question_with_options(item), item.options, item.answer,
                                observation, id=item.id)
               for item in items
               if (observation := observations.get(item.id)) is not None]
    if grading.gave_up is not None:
        return {q.id: judge.cached_verdict(judge.request_for(q)) for q in queries}
    try:
        verdicts = judge.sufficiency_many(queries)
    except JudgeItemsFailed as error:
        log.warning("error attribution: %d judge calls failed; those items count as unknown",
                    len(error.failures))
        return {q.id: judge.cached_verdict(judge.request_for(q)) for q in queries}
    return {query.id: verdict for query, verdict in zip(queries, verdicts, strict=True)}


def wrong_answer_observation(sample: Sample) -> str | None:
    """The observation of a scored, wrong answer (None for a right or unscored one, or one
    without an observation)."""
    if sample.score is None or sample.score >= 1.0 or sample.segments is None:
        return None
    return sample.segments.observation


def limited(items: Sequence[Item], limit: int | None) -> list[Item]:
    """The first ``limit`` items (all when ``limit`` is None); a limit below 1 is an error, not
    "all" (0) or "all but the last" (-1)."""
    if limit is None:
        return list(items)
    if limit < 1:
        raise ValueError(f"the item limit must be at least 1, not {limit}")
    return list(items[:limit])


def task_entry(
    loaded: LoadedTask,
    items: Sequence[Item],
    finished: dict[str, Sample],
    protocol: str,
    prompt_style: str,
    wall_time_s: float,
    verdicts: dict[str, Any] | None = None,
) -> tuple[TaskEntry, ProcessAnalysis]:
    """The results.json entry of a task from its samples (``items`` in task order), with the
    process analysis of its outputs (also returned, for rendering)."""
    samples = [finished[item.id] for item in items if item.id in finished]
    scores = [finished[item.id].score if item.id in finished else None for item in items]
    aggregate = aggregate_task(loaded.name, items, scores, protocol)
    analysis = analyze_samples(samples, verdicts=verdicts, required=REQUIRED_TAGS[prompt_style])
    return TaskEntry(
        score=aggregate.score,
        n=aggregate.n,
        n_scored=aggregate.n_scored,
        n_errors=sum(1 for sample in samples if sample.error),
        n_judge_pending=sum(1 for sample in samples if awaits_judge(sample)),
        complete=all(item.id in finished for item in items),
        breakdown=aggregate.breakdown,
        source_format=loaded.source_format,
        data=task_data_identity(loaded),
        analysis=analysis.as_dict(),
        wall_time_s=wall_time_s,
    ), analysis


def settings_record(settings: EvalSettings, data_files: dict[str, str]) -> RunSettings:
    return RunSettings(
        protocol=settings.protocol,
        prompt_style=settings.prompt_style,
        prompt_hash=style_hash(settings.prompt_style),
        frame_policy=settings.frame_policy.as_dict(),
        decoding=settings.decoding.as_dict(),
        seed=settings.decoding.seed,
        limit=settings.limit,
        batch_size=settings.batch_size,
        shard=list(settings.shard) if settings.shard else None,
        decode_timeout_s=settings.decode_timeout_s,
        data_root=str(settings.data_root) if settings.data_root else None,
        data_files=data_files,
    )


def run_differences(
    previous: RunResults,
    settings_json: RunSettings,
    task_data: dict[str, Any],
    model_fingerprint: dict[str, Any] | None = None,
    *,
    resuming: bool = True,
    model_spec: str | None = None,
) -> list[str]:
    """What makes this run another one than the run recorded in ``previous``: the model (when
    loaded), a setting that changes outputs, or the data of a task both have. ``resuming``: the
    limit may change (a resumed run covers more or fewer items; each done item carries its
    content hash). Settings recorded from the loaded backend are compared once it is loaded;
    before that, ``model_spec`` (the model asked for) stands in for the model."""
    recorded = recorded_identity(previous)
    now = RunIdentity(model_fingerprint, outcome_settings(settings_json.as_json()), task_data)
    ignore = set(RESUMABLE_SETTINGS) if resuming else set()
    if model_fingerprint is None:
        ignore |= set(recorded.settings) - set(now.settings)
    shared = [task for task in task_data if task in recorded.task_data]
    differences = identity_differences(recorded, now, ignore=ignore, tasks=shared)
    if model_spec is not None and model_spec != previous.model.spec:
        differences.insert(0, "model")
    return differences


def check_resumable(
    previous: RunResults | None, settings_json: RunSettings, task_data: dict[str, Any],
    root: Path, model_fingerprint: dict[str, Any] | None = None, model_spec: str | None = None,
) -> None:
    """Refuse to mix two different runs in one folder, naming what differs (see
    :func:`run_differences`)."""
    if previous is None:
        return
    differences = run_differences(previous, settings_json, task_data, model_fingerprint,
                                  model_spec=model_spec)
    if differences:
        raise RunStoreError(
            f"{root} holds a run with different {'; '.join(differences)}; resume it with the "
            "same model, settings and data, or choose another --output"
        )


def finished_run(
    previous: RunResults | None,
    settings: EvalSettings,
    task_data: dict[str, Any],
    judging: bool = False,
) -> bool:
    """True when ``previous`` is this very run (same model, settings, limit and data),
    already complete: nothing to load, generate or (with ``judging``, a judge configured now)
    grade."""
    if previous is None or not previous.finished_at:
        return False
    if previous.model.spec != settings.model_spec:
        return False
    if run_differences(previous, settings_record(settings, {}), task_data, resuming=False):
        return False
    entries = [previous.tasks.get(name) for name in settings.tasks]
    if judging and any(entry is not None and entry.n_judge_pending for entry in entries):
        return False
    return all(entry is not None and entry.complete for entry in entries)


def run_evaluation(
    settings: EvalSettings,
    backend: Backend,
    output: Path,
    *,
    judge: Any = None,
    show_progress: bool = True,
    on_task_done: Callable[[RunResults], None] | None = None,
    loaded_tasks: Sequence[LoadedTask] | None = None,
    decode_pool: DecodePool | None = None,
) -> RunResults:
    """Evaluate ``settings.tasks`` into ``output`` and return its results.

    Resumes a previous run in ``output`` (same model and settings), skipping finished items.
    ``loaded_tasks`` replaces loading ``settings.tasks`` from the data (the probe passes items
    that carry observations); ``decode_pool`` is the run's decode workers (see
    :func:`start_decoding_early`), else each task starts its own.
    results.json is rewritten after every task, so a crash loses at most the item in flight.
    """
    store = RunStore(output)
    with store.exclusive():
        if loaded_tasks is None:
            loaded_tasks = [load_task(name, settings.data_root) for name in settings.tasks]
        data_files = {
            path: digest for task in loaded_tasks for path, digest in task.data_files.items()
        }
        model = ModelRecord(spec=settings.model_spec,
                            name=model_display_name(settings.model_spec),
                            fingerprint=backend.fingerprint())
        settings_json = settings_record(settings, data_files)
        settings_json.input_transport = input_transport(backend)
        previous = store.read_results()
        task_data = {task.name: task_data_identity(task) for task in loaded_tasks}
        check_resumable(previous, settings_json, task_data, output, model.fingerprint)
        results = RunResults(
            schema=RESULTS_SCHEMA,
            model=model,
            settings=settings_json,
            package=provenance.package_info(),
            tasks=dict(previous.tasks) if previous else {},
            started_at=previous.started_at if previous and previous.started_at else _now(),
            finished_at=None,
        )
        analysis_sections = []
        grading = GradingJudge(judge) if judge is not None else None
        usage_at_start = backend_usage(backend)
        judge_usage_at_start = judge.usage().as_dict() if judge is not None else None
        for loaded in loaded_tasks:
            outcome = evaluate_task(loaded, backend, store, settings, grading, show_progress,
                                    decode_pool)
            earlier = results.tasks.get(outcome.name)
            earlier_time = earlier.wall_time_s if earlier is not None else 0.0
            outcome.entry.wall_time_s = round(outcome.entry.wall_time_s + earlier_time, 3)
            results.tasks[outcome.name] = outcome.entry
            usage_now = backend_usage(backend)
            if usage_at_start is not None and usage_now is not None:
                results.backend_usage = run_usage(
                    usage_now, usage_at_start, (previous.backend_usage if previous else None) or {})
            store.write_results(results)
            analysis_sections.append(f"## {outcome.name}\n\n{outcome.analysis_markdown}\n")
            if on_task_done:
                on_task_done(results)
        if judge is not None and grading is not None and judge_usage_at_start is not None:
            earlier_usage = previous.judge.usage if previous and previous.judge else {}
            usage = run_usage(judge.usage().as_dict(), judge_usage_at_start, earlier_usage)
            results.judge = JudgeRecord(config=judge.describe(), usage=usage,
                                        gave_up=grading.gave_up)
        # analysis.md first: once results.json says finished, a re-run does nothing, so a
        # crash between the two must leave the run unfinished, not analysis.md missing.
        (output / "analysis.md").write_text(
            "# Process analysis\n\n" + "\n".join(analysis_sections), encoding="utf-8")
        results.finished_at = _now()
        store.write_results(results)
    return results


def input_transport(backend: Backend) -> dict[str, Any]:
    """How inputs reach the model: a served backend's transport (request format, frame
    encoding, lossy or not), else in-process arrays."""
    describe = getattr(backend, "input_transport", None)
    return describe() if describe else {"kind": "in-process", "lossy": False}


def backend_usage(backend: Backend) -> dict[str, Any] | None:
    """A served backend's counts so far (requests, tokens, cost); None for in-process ones."""
    usage = getattr(backend, "usage", None)
    return usage() if usage else None


def run_usage(
    now: dict[str, Any], at_start: dict[str, Any], earlier: dict[str, Any]
) -> dict[str, Any]:
    """This run's usage: what the backend did since the run started (a backend may serve
    several runs), added to the ``earlier`` invocations' of the same run folder. A number
    unknown in any part (a cost without a price) stays unknown."""
    total = dict(now)
    for key, value in now.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            before, start = earlier.get(key, 0), at_start.get(key, 0)
            total[key] = None if before is None or start is None else before + value - start
        elif value is None and key in earlier:
            total[key] = None
    return total


def model_display_name(spec: str) -> str:
    """A short name for tables: the folder name of a path, the spec otherwise."""
    file = replay_file(spec)
    if file is not None:
        return REPLAY_PREFIX + file.stem
    return Path(spec).name or spec


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
