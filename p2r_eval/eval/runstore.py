"""The run store: one output folder per run, written so that nothing computed is lost.

Layout::

    OUTPUT/
      results.json          settings, provenance and per-task scores (atomic rewrite)
      samples/<task>.jsonl  one line per finished item, appended, flushed and fsynced
      verdicts/<task>.json  the observation-sufficiency verdicts of --attribute-errors, by id
      .lock                 held by the run that writes the folder

A crash can leave at most one half-written last line in a samples file; :meth:`RunStore.
load_samples` detects it (no trailing newline or invalid JSON on the last line), cuts it off
the file and never parses it as data. An invalid line anywhere else is an error naming the
file and line: the store does not guess about damage it did not cause.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from p2r_eval.core.atomic_files import write_text_atomically
from p2r_eval.core.jsonio import NotUTF8Error, json_text, jsonl_lines, parse_json, utf8_text
from p2r_eval.eval.results import (
    ResultsFormatError,
    RunResults,
    Sample,
    parse_results,
    parse_sample,
)

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
SAMPLES_DIR = "samples"
VERDICTS_DIR = "verdicts"
LOCK_FILE = ".lock"
MERGE_WAIT_S = 600.0
"""How long a merge of shards waits for another merge of the same folder in progress (two
shards finishing together both merge, to the same result): ``exclusive(wait_s=...)``."""


class RunStoreError(RuntimeError):
    """The output folder cannot be used as asked (locked, damaged, or another run's)."""


class RunStore:
    """Reads and writes one run folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._held: tuple[FileIdentity, FileIdentity] | None = None

    @property
    def results_path(self) -> Path:
        return self.root / RESULTS_FILE

    def samples_path(self, task: str) -> Path:
        return self.root / SAMPLES_DIR / f"{task}.jsonl"

    @contextmanager
    def exclusive(self, wait_s: float = 0.0) -> Iterator[RunStore]:
        """Hold the folder's lock for a whole run; a second run refuses with a clear message
        (after waiting up to ``wait_s`` seconds for the lock: merges of shards wait, since two
        shards finishing together both merge, to the same result)."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / LOCK_FILE))
        try:
            lock.acquire(timeout=wait_s)
        except Timeout:
            raise self._busy() from None
        try:
            self._held = (file_identity(self.root), file_identity(self.root / LOCK_FILE))
            yield self
        finally:
            self._held = None
            lock.release()

    def check_still_held(self) -> None:
        """While :meth:`exclusive` holds the folder: refuse to write once the folder or its
        lock was deleted or replaced. Writing on would re-create a folder that silently lacks
        this run's earlier items, or write into a folder another run now owns."""
        if self._held is None:
            return
        try:
            current = (file_identity(self.root), file_identity(self.root / LOCK_FILE))
        except OSError:
            current = None
        if current != self._held:
            raise RunStoreError(
                f"{self.root} was deleted or replaced while this run was writing it; stopped, "
                "so that nothing is written to a folder that lacks this run's earlier items or "
                "that another run now owns. Run the same command again to start over.")

    def check_free(self) -> None:
        """Refuse at once, as :meth:`exclusive` would, while another run holds the folder: a
        second run then stops before it loads a model (:meth:`exclusive` still guards the run
        itself)."""
        if not (self.root / LOCK_FILE).exists():
            return
        lock = FileLock(str(self.root / LOCK_FILE))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise self._busy() from None
        lock.release()

    def _busy(self) -> RunStoreError:
        return RunStoreError(f"another p2r run is writing {self.root} right now; wait for it to "
                             "finish or choose another --output")

    def read_results(self) -> RunResults | None:
        """results.json, read as the results contract (:class:`p2r_eval.eval.results.
        RunResults`); None when the run has none yet."""
        data = self.read_json(self.results_path)
        return None if data is None else self._checked_results(data)

    def write_results(self, results: RunResults) -> None:
        """Atomically replace results.json (write a temporary file, fsync, rename); results
        that break the contract (a field assigned a value of the wrong type) are refused
        before anything is written."""
        self.write_json(self.results_path, self._checked_results(results.as_json()).as_json())

    def _checked_results(self, data: Any) -> RunResults:
        try:
            return parse_results(data, self.results_path)
        except ResultsFormatError as error:
            raise RunStoreError(str(error)) from None

    def read_json(self, path: Path) -> Any:
        """A JSON file of the folder, None when it does not exist."""
        if not path.exists():
            return None
        try:
            return parse_json(utf8_text(path.read_bytes()))
        except (json.JSONDecodeError, NotUTF8Error) as error:
            raise RunStoreError(f"{path} is not valid JSON: {error}") from None

    def write_json(self, path: Path, value: Any) -> None:
        """Atomically replace a JSON file of the folder (indented, one final newline)."""
        self.check_still_held()
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json_text(value, indent=2) + "\n")

    def verdicts_path(self, task: str) -> Path:
        return self.root / VERDICTS_DIR / f"{task}.json"

    def write_verdicts(self, task: str, verdicts: dict[str, dict[str, Any] | None]) -> None:
        """Atomically replace the task's observation-sufficiency verdicts (item id to the
        verdict's fields, None where the judge gave none)."""
        self.check_still_held()
        path = self.verdicts_path(task)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json_text(verdicts))

    def read_verdicts(self, task: str) -> dict[str, dict[str, Any]]:
        """The task's recorded sufficiency verdicts by item id (empty when none were asked)."""
        path = self.verdicts_path(task)
        if not path.exists():
            return {}
        try:
            verdicts = parse_json(utf8_text(path.read_bytes()))
        except (json.JSONDecodeError, NotUTF8Error) as error:
            raise RunStoreError(f"{path} is not valid JSON: {error}") from None
        return {key: value for key, value in verdicts.items() if isinstance(value, dict)}

    def append_sample(self, task: str, sample: Sample) -> None:
        """Append one finished item and make it durable before returning."""
        self.append_record(task, sample.as_json())

    def append_record(self, task: str, record: dict[str, Any]) -> None:
        """Append one JSON line to the task's log (the annotation store's records are not
        samples) and make it durable before returning."""
        self.check_still_held()
        path = self.samples_path(task)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json_text(record) + "\n"
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def replace_samples(self, task: str, samples: Iterable[Sample]) -> None:
        """Atomically replace the task's samples file with ``samples`` (written to a temporary
        file, fsynced, renamed): a crash leaves the old file or the new one, never a mix."""
        self.check_still_held()
        path = self.samples_path(task)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            handle.writelines(json_text(sample.as_json()) + "\n" for sample in samples)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def load_samples(self, task: str, repair: bool = True) -> dict[str, Sample]:
        """Finished items of ``task`` by id (:meth:`load_records`), read as the results
        contract (:class:`p2r_eval.eval.results.Sample`): a line that breaks it is an error
        naming the file, line and field."""
        path = self.samples_path(task)
        try:
            return {item_id: parse_sample(record, f"{path}, the sample of item {item_id!r}")
                    for item_id, record in self.load_records(task, repair).items()}
        except ResultsFormatError as error:
            raise RunStoreError(str(error)) from None

    def load_records(self, task: str, repair: bool = True) -> dict[str, dict[str, Any]]:
        """The JSON lines of ``task`` by id; a later line for the same id supersedes an earlier.

        A half-written last line is never parsed. The writer of the run (``repair=True``) cuts
        it off the file; readers of another run's folder pass ``repair=False`` and only skip it,
        so reading a run that is still being written never modifies it.
        """
        path = self.samples_path(task)
        if not path.exists():
            return {}
        if repair:
            repair_torn_tail(path)
        data = path.read_bytes()
        samples: dict[str, dict[str, Any]] = {}
        try:
            lines = jsonl_lines(utf8_text(data[: intact_length(data)]))
        except NotUTF8Error as error:
            raise RunStoreError(f"{path}, line {error.line}: not UTF-8 text") from None
        for number, line in enumerate(lines, start=1):
            try:
                record = parse_json(line)
            except json.JSONDecodeError as error:
                message = f"{path}, line {number}: not valid JSON ({error})"
                raise RunStoreError(message) from None
            if not isinstance(record, dict) or "id" not in record:
                raise RunStoreError(f"{path}, line {number}: a sample needs an 'id' field")
            samples[str(record["id"])] = record
        return samples


FileIdentity = tuple[int, int]


def file_identity(path: Path) -> FileIdentity:
    """(device, inode) of ``path``: the same only while it is the same file or folder."""
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def intact_length(data: bytes) -> int:
    """How many leading bytes of a samples file hold whole lines: a last line that does not
    end with a newline, or that is not valid JSON (a truncated copy), is torn."""
    if not data:
        return 0
    if not data.endswith(b"\n"):
        return data.rfind(b"\n") + 1
    last_start = data.rfind(b"\n", 0, len(data) - 1) + 1
    try:
        parse_json(data[last_start:])
    except (json.JSONDecodeError, UnicodeDecodeError):
        return last_start
    return len(data)


def repair_torn_tail(path: Path) -> bool:
    """Cut a half-written last line (a crash mid-append) off ``path``. Returns True if it did."""
    data = path.read_bytes()
    keep = intact_length(data)
    if keep == len(data):
        return False
    log.warning("%s: removed a half-written last line (%d bytes)", path, len(data) - keep)
    with path.open("r+b") as handle:
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    return True

