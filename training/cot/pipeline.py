"""The annotation run: pending items through generation, verification and judging.

The teacher generates in batches on the main thread; each output is verified right away (a
pure, cheap function); outputs that pass go to a small pool of judge threads, so the judge
works while the teacher generates. At most ``2 x judge concurrency`` items wait for the
judge: memory stays bounded and an interrupted run has little in flight. Every step's
verdict is appended to its log before the item moves on (see :mod:`p2r_train.cot.store`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from p2r_train.cot.records import (
    UnsafeMediaPathError,
    VQARecord,
    load_vqa_records,
    record_item,
    record_problem,
    resolve_media_path,
)
from p2r_train.cot.report import dropped_records, item_outcome, kept_records, summarize
from p2r_train.cot.steps import (
    DEFAULT_MIN_SCORES,
    DEFAULT_TEACHER,
    TEACHER_PROMPT_STYLE,
    TEACHER_PROMPT_VERSION,
    TEACHER_SYSTEM_PROMPT,
    judge_failure_entry,
    observation_of,
    sufficiency_entry,
    teacher_prompt_hash,
    verify_output,
)
from p2r_train.cot.store import (
    COT_FILE,
    DROPPED_FILE,
    JUDGE_CACHE_DIR,
    STEPS,
    SUMMARY_FILE,
    AnnotationStore,
    StepState,
)
from tqdm import tqdm

from p2r_eval.core import provenance
from p2r_eval.core.items import Item
from p2r_eval.core.request import Request
from p2r_eval.core.scoring import extract_answer
from p2r_eval.eval.generation import batched, generate_isolated
from p2r_eval.eval.runstore import MERGE_WAIT_S, RunStoreError
from p2r_eval.judge import (
    SUFFICIENCY_PROMPT_VERSION,
    Judge,
    JudgeError,
    SufficiencyQuery,
    make_judge,
)
from p2r_eval.media.requests import MediaError, RequestBuilder, prefetch_requests
from p2r_eval.media.video import FramePolicy
from p2r_eval.models.base import Backend, DecodingSettings
from p2r_eval.models.endpoint import EndpointSettings

log = logging.getLogger(__name__)

RUN_SCHEMA = 1
PENDING_BATCH_FILE = "judge_batch_pending.txt"
Shard = tuple[int, int]


@dataclass(frozen=True)
class JudgeSettings:
    """How step 3's judge is built (:func:`p2r_eval.judge.make_judge`). ``cache_dir`` None
    means ``OUTPUT/judge_cache``."""

    backend: str = "anthropic"
    model: str | None = None
    base_url: str | None = None
    cache_dir: Path | None = None
    concurrency: int = 8
    max_retries: int = 6
    timeout_s: float = 120.0
    batch: bool = False
    batch_poll_s: float = 60.0


@dataclass(frozen=True)
class AnnotateSettings:
    """Everything that decides what an annotation run computes."""

    input: Path
    media_root: Path
    output: Path
    teacher: str = DEFAULT_TEACHER
    teacher_endpoint: EndpointSettings | None = None
    frame_policy: FramePolicy = field(default_factory=FramePolicy)
    decoding: DecodingSettings = field(default_factory=DecodingSettings)
    device: str | None = None
    batch_size: int = 1
    decode_workers: int = 0
    frame_cache: Path | None = None
    frame_folder_fps: float | None = None
    min_scores: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIN_SCORES))
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    limit: int | None = None
    shard: Shard | None = None
    stop_after: str = "judge"
    retry_errors: bool = False

    def __post_init__(self) -> None:
        if self.stop_after not in STEPS:
            raise ValueError(f"stop_after must be one of {STEPS}, got {self.stop_after!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.frame_folder_fps is not None and not self.frame_folder_fps > 0:
            raise ValueError(f"frame folder fps must be > 0, got {self.frame_folder_fps}")

    @property
    def run_dir(self) -> Path:
        """The folder this process writes: OUTPUT, or OUTPUT/shards/I-of-N for a shard."""
        return shard_folder(self.output, self.shard) if self.shard else self.output

    def identity(self, input_sha256: str) -> dict[str, Any]:
        """The settings a resumed run must share with the run already in the folder."""
        return {
            "input_sha256": input_sha256,
            "teacher": self.teacher,
            "teacher_prompt_version": TEACHER_PROMPT_VERSION,
            "frame_policy": self.frame_policy.key(),
            "frame_folder_fps": self.frame_folder_fps,
            "decoding": self.decoding.as_dict(),
            "min_scores": dict(sorted(self.min_scores.items())),
            "judge_backend": self.judge.backend,
            "judge_model": self.judge.model,
            "judge_prompt_version": SUFFICIENCY_PROMPT_VERSION,
            "shard": list(self.shard) if self.shard else None,
        }


def shard_folder(output: Path, shard: Shard) -> Path:
    return Path(output) / "shards" / f"{shard[0]}-of-{shard[1]}"


def select_records(
    records: Sequence[VQARecord], limit: int | None, shard: Shard | None
) -> list[VQARecord]:
    """The first ``limit`` records, then every n-th from the i-th for shard ``(i, n)``."""
    chosen = list(records[:limit] if limit else records)
    return chosen[shard[0]::shard[1]] if shard else chosen


@dataclass(frozen=True)
class WorkPlan:
    """The items each step still has to process (a generated item flows on by itself)."""

    generate: list[VQARecord]
    verify: list[VQARecord]
    judge: list[VQARecord]

    def empty(self) -> bool:
        return not (self.generate or self.verify or self.judge)


def plan_work(
    records: Sequence[VQARecord], state: StepState, stop_after: str, retry_errors: bool
) -> WorkPlan:
    """What is left to do: items with no entry for a step (or, with ``retry_errors``, a
    failed one) whose previous step let them through, up to ``stop_after``."""

    def due(step: str, record: VQARecord) -> bool:
        entry = state[step].get(record.id)
        return entry is None or (retry_errors and entry["status"] == "failed")

    def passed(step: str, record: VQARecord) -> bool:
        entry = state[step].get(record.id)
        return entry is not None and entry["status"] in ("ok", "kept")

    last = STEPS.index(stop_after)
    generate = [r for r in records if due("generate", r)]
    verify = [r for r in records if last >= 1 and passed("generate", r) and due("verify", r)]
    judge = [r for r in records if last >= 2 and passed("verify", r) and due("judge", r)]
    return WorkPlan(generate, verify, judge)


class SufficiencyWorker:
    """Judges observations on background threads; ``on_entry`` stores each result.

    ``submit`` blocks while ``2 x concurrency`` items are already waiting. A judge failure is
    an item failure (recorded, the run goes on); a failure to store the result (disk full) is
    raised again by the next ``submit`` or by :meth:`close`.
    """

    def __init__(
        self,
        judge: Judge,
        on_entry: Callable[[VQARecord, dict[str, Any]], None],
        concurrency: int,
    ) -> None:
        self.judge = judge
        self.on_entry = on_entry
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="judge")
        self._slots = threading.BoundedSemaphore(2 * concurrency)
        self._errors: list[BaseException] = []

    def submit(self, record: VQARecord, output: str) -> None:
        self._raise_stored_error()
        self._slots.acquire()
        future = self._pool.submit(self._judge_and_store, record, output)
        future.add_done_callback(self._keep_error)

    def _judge_and_store(self, record: VQARecord, output: str) -> None:
        try:
            self.on_entry(record, judge_observation(self.judge, record, output))
        finally:
            self._slots.release()

    def _keep_error(self, future: Future) -> None:
        error = future.exception()
        if error is not None:
            self._errors.append(error)

    def _raise_stored_error(self) -> None:
        if self._errors:
            raise self._errors[0]

    def close(self, *, cancel: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)
        self._raise_stored_error()


def sufficiency_query(record: VQARecord, output: str) -> SufficiencyQuery:
    """Step 3's question for one item: the record's question, options and correct answer,
    and the teacher's observation."""
    fields = record.fields
    return SufficiencyQuery(fields["problem"], tuple(fields.get("options") or ()),
                            extract_answer(fields["solution"]), observation_of(output), record.id)


def judge_observation(judge: Judge, record: VQARecord, output: str) -> dict[str, Any]:
    """Step 3 for one item: the judge's verdict entry, or a failure entry (never raises)."""
    query = sufficiency_query(record, output)
    try:
        verdict = judge.sufficiency(query.question, query.options, query.answer,
                                    query.observation, item_id=query.id)
    except Exception as error:  # any judge failure is this item's failure
        log.warning("item %s: judge failed: %s", record.id, error)
        return judge_failure_entry(error)
    return sufficiency_entry(verdict)


class BatchedSufficiency:
    """Step 3 through Anthropic's Message Batches API (``--judge-batch``: half the price, up
    to a day of latency). Observations are collected while the teacher runs and sent as one
    batch when generation ends. The batch id is written to ``pending_file`` before waiting, so
    a run interrupted while it waits collects that same batch on its next start (its replies
    go to the judge cache) instead of paying for it twice."""

    def __init__(self, judge: Judge, on_entry: Callable[[VQARecord, dict[str, Any]], None],
                 pending_file: Path, poll_interval_s: float) -> None:
        self.judge = judge
        self.on_entry = on_entry
        self.pending_file = pending_file
        self.poll_interval_s = poll_interval_s
        self.items: list[tuple[VQARecord, SufficiencyQuery]] = []

    def submit(self, record: VQARecord, output: str) -> None:
        self.items.append((record, sufficiency_query(record, output)))

    def close(self, *, cancel: bool = False) -> None:
        if cancel or not self.items:
            return
        from p2r_eval.judge import submit_batch  # the batch API imports the Anthropic SDK

        queries = [query for _, query in self.items]
        if self.pending_file.exists():
            self.collect(self.pending_file.read_text().strip(), queries)
        batch_id = submit_batch(self.judge, queries)
        if batch_id is not None:
            self.pending_file.write_text(batch_id)
            self.collect(batch_id, queries)
        for record, query in self.items:
            verdict = self.judge.cached_verdict(self.judge.request_for(query))
            self.on_entry(record, sufficiency_entry(verdict) if verdict is not None else
                          judge_failure_entry(JudgeError(f"{record.id}: no verdict in the batch")))

    def collect(self, batch_id: str, queries: Sequence[SufficiencyQuery]) -> None:
        """Wait for a batch, store its replies in the judge cache, forget its id."""
        from p2r_eval.judge import collect_batch, wait_for_batch

        wait_for_batch(self.judge, batch_id, poll_interval_s=self.poll_interval_s)
        outcome = collect_batch(self.judge, batch_id, queries)
        for label, reason in outcome.failures.items():
            log.warning("judge batch %s: %s: %s", batch_id, label, reason)
        self.pending_file.unlink(missing_ok=True)


class AnnotationRun:
    """One pass over a run folder's pending work (see the module docs)."""

    def __init__(
        self,
        settings: AnnotateSettings,
        store: AnnotationStore,
        state: StepState,
        run_info: dict[str, Any],
        progress: tqdm,
    ) -> None:
        self.settings = settings
        self.store = store
        self.state = state
        self.run_info = run_info
        self.progress = progress
        self.judging: SufficiencyWorker | BatchedSufficiency | None = None
        self._teacher: Backend | None = None
        self._progress_lock = threading.Lock()

    # -- the three steps ------------------------------------------------------------
    def execute(self, plan: WorkPlan) -> None:
        if self.settings.stop_after == "judge" and not plan.empty():
            judge = build_judge(self.settings)
            self.run_info["judge"]["description"] = judge.describe()
            self.judging = self.sufficiency_judging(judge)
        try:
            for record in plan.judge:
                self._submit_for_judging(record, self.state["generate"][record.id]["output"])
            for record in plan.verify:
                self.verify(record)
            self.generate(plan.generate)
        except BaseException:
            if self.judging is not None:
                self.judging.close(cancel=True)
            raise
        if self.judging is not None:
            self.judging.close()

    def _submit_for_judging(self, record: VQARecord, output: str) -> None:
        if self.judging is None:
            raise RuntimeError(f"{record.id}: due for the judge, but this run has no judge")
        self.judging.submit(record, output)

    def sufficiency_judging(self, judge: Judge) -> SufficiencyWorker | BatchedSufficiency:
        """Live concurrent calls, or one Message Batch at the end (``--judge-batch``)."""
        if self.settings.judge.batch:
            return BatchedSufficiency(judge, self.store_verdict,
                                      self.settings.run_dir / PENDING_BATCH_FILE,
                                      self.settings.judge.batch_poll_s)
        return SufficiencyWorker(judge, self.store_verdict, self.settings.judge.concurrency)

    def generate(self, records: Sequence[VQARecord]) -> None:
        items = [item for item in map(self.prepare, records) if item is not None]
        by_id = {record.id: record for record in records}
        builder = RequestBuilder(TEACHER_PROMPT_STYLE, self.settings.frame_policy,
                                 needs_media=True, frame_cache=self.settings.frame_cache)
        depth = max(2 * self.settings.decode_workers, 2 * self.settings.batch_size)
        stream = prefetch_requests(items, builder, workers=self.settings.decode_workers,
                                   depth=depth)
        for batch in batched(stream, self.settings.batch_size):
            ready = []
            for item, request in batch:
                if isinstance(request, MediaError):
                    self.fail(by_id[item.id], "generate", "media_error", str(request))
                else:
                    ready.append((item, replace(request, system=TEACHER_SYSTEM_PROMPT)))
            if ready:
                self.generate_batch(ready, by_id)

    def prepare(self, record: VQARecord) -> Item | None:
        """The item to generate for, or ``None`` after recording why there is none."""
        problem = record_problem(record.fields)
        if problem is not None:
            self.fail(record, "generate", "invalid_record", problem)
            return None
        try:
            media = resolve_media_path(self.settings.media_root, record.fields["path"])
        except UnsafeMediaPathError as error:
            self.fail(record, "generate", "unsafe_media_path", str(error))
            return None
        return record_item(record, media, self.settings.frame_folder_fps)

    def generate_batch(
        self, ready: Sequence[tuple[Item, Request]], by_id: dict[str, VQARecord]
    ) -> None:
        prompt_hashes = {item.id: teacher_prompt_hash(request.prompt) for item, request in ready}
        for item, output, error in generate_isolated(self.teacher, ready):
            record = by_id[item.id]
            if error is not None:
                log.warning("teacher failed: %s", error)
                self.fail(record, "generate", "teacher_error", error)
                continue
            entry = {"id": record.id, "status": "ok", "output": output,
                     "prompt_hash": prompt_hashes[item.id]}
            self.store.append_step(self.state, "generate", entry)
            if self.settings.stop_after == "generate":
                self.advance()
            else:
                self.verify(record)

    def verify(self, record: VQARecord) -> None:
        output = self.state["generate"][record.id]["output"]
        try:
            verification = verify_output(output, record.problem_type, record.fields["solution"],
                                         self.settings.min_scores)
        except Exception as error:  # a rule failure is this item's failure
            self.fail(record, "verify", "verify_error", f"{type(error).__name__}: {error}")
            return
        entry = {"id": record.id, **verification.as_dict()}
        self.store.append_step(self.state, "verify", entry)
        if verification.status == "kept" and self.judging is not None:
            self.judging.submit(record, output)
        else:
            self.advance()

    def store_verdict(self, record: VQARecord, entry: dict[str, Any]) -> None:
        self.store.append_step(self.state, "judge", {"id": record.id, **entry})
        self.advance()

    def fail(self, record: VQARecord, step: str, reason: str, detail: str) -> None:
        entry = {"id": record.id, "status": "failed", "reason": reason, "detail": detail}
        self.store.append_step(self.state, step, entry)
        self.advance()

    def advance(self) -> None:
        with self._progress_lock:
            self.progress.update(1)

    # -- the teacher, loaded on first use ---------------------------------------------
    @property
    def teacher(self) -> Backend:
        if self._teacher is None:
            self._teacher = load_teacher(self.settings)
            fingerprint = self._teacher.fingerprint()
            check_teacher_fingerprint(self.run_info["teacher"].get("fingerprint"), fingerprint,
                                      self.settings.run_dir)
            self.run_info["teacher"]["fingerprint"] = fingerprint
            self.store.write_run_info(self.run_info)
        return self._teacher


def load_teacher(settings: AnnotateSettings) -> Backend:
    from p2r_eval.models import load_backend

    endpoint = settings.teacher_endpoint
    return load_backend(settings.teacher, decoding=settings.decoding,
                        max_pixels=settings.frame_policy.max_pixels, device=settings.device,
                        backend="openai" if endpoint else "hf", endpoint=endpoint)


def build_judge(settings: AnnotateSettings) -> Judge:
    """The configured judge; :class:`p2r_eval.judge.JudgeConfigError` before any work when
    it cannot work (no API key, unreachable endpoint, missing model)."""
    judge = settings.judge
    return make_judge(
        judge.backend,
        model=judge.model,
        base_url=judge.base_url,
        cache_dir=judge.cache_dir or settings.run_dir / JUDGE_CACHE_DIR,
        concurrency=judge.concurrency,
        max_retries=judge.max_retries,
        timeout_s=judge.timeout_s,
    )


MACHINE_KEYS = ("device", "attn_implementation")
"""Fingerprint entries that may change when a run resumes on another machine."""


def check_teacher_fingerprint(
    recorded: dict[str, Any] | None, current: dict[str, Any], root: Path
) -> None:
    if recorded is None:
        return
    differing = sorted(
        key for key in set(recorded) | set(current)
        if key not in MACHINE_KEYS and recorded.get(key) != current.get(key)
    )
    if differing:
        raise RunStoreError(
            f"{root} was annotated with a different teacher checkpoint ({', '.join(differing)} "
            "differ); resume with the same teacher or choose another --output"
        )


def check_resumable(previous: dict[str, Any] | None, identity: dict[str, Any], root: Path) -> None:
    """Refuse to mix two configurations in one folder (``limit`` may change)."""
    if previous is None:
        return
    recorded = previous.get("identity", {})
    differing = [key for key in identity if recorded.get(key) != identity[key]]
    if differing:
        raise RunStoreError(
            f"{root} holds an annotation run with different {', '.join(differing)}; resume it "
            "with the same settings and input, or choose another --output"
        )


def settings_record(settings: AnnotateSettings) -> dict[str, Any]:
    """The settings as recorded in run.json (paths as given)."""
    return {
        "input": str(settings.input),
        "media_root": str(settings.media_root),
        "teacher": settings.teacher,
        "frame_policy": settings.frame_policy.as_dict(),
        "decoding": settings.decoding.as_dict(),
        "batch_size": settings.batch_size,
        "min_scores": settings.min_scores,
        "judge": {
            "backend": settings.judge.backend,
            "model": settings.judge.model,
            "base_url": settings.judge.base_url,
            "concurrency": settings.judge.concurrency,
            "max_retries": settings.judge.max_retries,
        },
        "limit": settings.limit,
        "shard": list(settings.shard) if settings.shard else None,
        "stop_after": settings.stop_after,
    }


def new_run_info(
    settings: AnnotateSettings, identity: dict[str, Any], previous: dict[str, Any] | None
) -> dict[str, Any]:
    previous = previous or {}
    return {
        "schema": RUN_SCHEMA,
        "identity": identity,
        "settings": settings_record(settings),
        "teacher": {
            "spec": settings.teacher,
            "prompt_style": TEACHER_PROMPT_STYLE,
            "prompt_version": TEACHER_PROMPT_VERSION,
            "system_prompt": TEACHER_SYSTEM_PROMPT,
            "fingerprint": previous.get("teacher", {}).get("fingerprint"),
        },
        "judge": {
            "backend": settings.judge.backend,
            "model": settings.judge.model,
            "prompt_version": SUFFICIENCY_PROMPT_VERSION,
            "description": previous.get("judge", {}).get("description"),
        },
        "package": provenance.package_info(),
        "started_at": previous.get("started_at") or _now(),
        "wall_time_s": previous.get("wall_time_s", 0.0),
    }


def run_annotation(settings: AnnotateSettings, *, show_progress: bool = True) -> dict[str, Any]:
    """Annotate the pending items of ``settings.run_dir`` and return its summary.

    Resumes what is there (same settings and input), never redoes a finished step of an
    item, and rewrites cot.jsonl, dropped.jsonl and summary.json at the end.
    """
    started = time.monotonic()
    store = AnnotationStore(settings.run_dir)
    with store.exclusive():
        input_sha256 = provenance.file_sha256(settings.input)
        records = select_records(load_vqa_records(settings.input), settings.limit, settings.shard)
        state = store.load_state()
        previous = store.read_run_info()
        identity = settings.identity(input_sha256)
        check_resumable(previous, identity, settings.run_dir)
        run_info = new_run_info(settings, identity, previous)
        store.write_run_info(run_info)
        plan = plan_work(records, state, settings.stop_after, settings.retry_errors)
        settled = len(records) - len(plan.generate) - len(plan.verify) - len(plan.judge)
        with tqdm(total=len(records), initial=settled, desc="annotate", unit="item",
                  disable=not show_progress, dynamic_ncols=True) as progress:
            AnnotationRun(settings, store, state, run_info, progress).execute(plan)
        elapsed = time.monotonic() - started
        run_info["wall_time_s"] = round(run_info["wall_time_s"] + elapsed, 3)
        run_info["updated_at"] = _now()
        store.write_run_info(run_info)
        return write_final_files(store, records, state, run_info, this_run_s=elapsed)


def write_final_files(
    store: AnnotationStore,
    records: Sequence[VQARecord],
    state: StepState,
    run_info: dict[str, Any],
    *,
    this_run_s: float,
) -> dict[str, Any]:
    """cot.jsonl, dropped.jsonl and summary.json of ``records`` from the step logs."""
    summary = summarize(records, state)
    summary["files"] = {
        COT_FILE: store.write_jsonl(COT_FILE, kept_records(records, state, run_info)),
        DROPPED_FILE: store.write_jsonl(DROPPED_FILE, dropped_records(records, state, run_info)),
    }
    summary["teacher"] = {key: run_info["teacher"][key] for key in ("spec", "prompt_version")}
    summary["judge"] = {key: run_info["judge"][key] for key in ("backend", "prompt_version")}
    summary["settings"] = run_info["settings"]
    summary["wall_time_s"] = run_info["wall_time_s"]
    summary["this_run_wall_time_s"] = round(this_run_s, 3)
    store.write_named_json(SUMMARY_FILE, summary)
    return summary


def shard_count(output: Path) -> int | None:
    """N of the ``OUTPUT/shards/I-of-N`` folders (None when there are none)."""
    counts = {folder.name.split("-of-")[-1] for folder in (Path(output) / "shards").glob("*-of-*")}
    if not counts:
        return None
    if len(counts) > 1:
        raise RunStoreError(f"{output}/shards holds shards of different counts: {sorted(counts)}")
    return int(counts.pop())


def merge_shards(settings: AnnotateSettings, count: int) -> dict[str, Any] | None:
    """Merge the ``count`` shards of ``settings.output`` once every one is complete: their
    step logs together give the final files of the whole selection, in input order. Returns
    the merged summary, or None while a shard is missing or unfinished."""
    shards = [AnnotationStore(shard_folder(settings.output, (i, count))) for i in range(count)]
    summaries = [store.read_named_json(SUMMARY_FILE) for store in shards]
    if any(summary is None or not summary.get("complete") for summary in summaries):
        return None
    infos = [store.read_run_info() or {} for store in shards]
    identities = {_without_shard(info.get("identity", {})) for info in infos}
    if len(identities) > 1:
        raise RunStoreError(f"the shards of {settings.output} were run with different settings "
                            "or inputs; not merging")
    if infos[0]["identity"]["input_sha256"] != provenance.file_sha256(settings.input):
        raise RunStoreError(f"the shards of {settings.output} annotated another version of "
                            f"{settings.input}; not merging")
    state: StepState = {step: {} for step in STEPS}
    for store in shards:
        for step, entries in store.load_state().items():
            state[step].update(entries)
    limit = infos[0]["settings"]["limit"]
    records = select_records(load_vqa_records(settings.input), limit, None)
    root = AnnotationStore(settings.output)
    with root.exclusive(wait_s=MERGE_WAIT_S):  # two shards finishing together both merge
        run_info = {**infos[0], "settings": {**infos[0]["settings"], "shard": None},
                    "merged_shards": count,
                    "wall_time_s": round(sum(info.get("wall_time_s", 0.0) for info in infos), 3)}
        missing = [r.id for r in records if item_outcome(r.id, state).status == "pending"]
        if missing:
            raise RunStoreError(f"the shards of {settings.output} lack {len(missing)} items of "
                                f"the selection (first: {missing[0]}); was --limit the same?")
        return write_final_files(root, records, state, run_info, this_run_s=0.0)


def _without_shard(identity: dict[str, Any]) -> str:
    material = {key: value for key, value in identity.items() if key != "shard"}
    return hashlib.sha256(repr(sorted(material.items())).encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
