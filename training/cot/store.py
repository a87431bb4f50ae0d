"""The annotation output folder: per-step logs that make a run resumable.

Layout::

    OUTPUT/
      run.json               settings, teacher and judge identity, provenance (atomic rewrite)
      steps/generated.jsonl  one line per item the teacher answered or that failed before it
      steps/verified.jsonl   one line per verified output (kept or dropped, with the score)
      steps/judged.jsonl     one line per sufficiency verdict (or judge failure)
      judge_cache/           the judge's reply cache (default place)
      cot.jsonl              kept items, VideoP2R-CoT release format (rewritten at the end)
      dropped.jsonl          dropped and failed items with their step and reason
      summary.json           counts per step, reason and problem type; judge usage; wall time
      .lock                  held by the process writing the folder

Step lines are appended, flushed and fsynced one item at a time (the run store's
``append_record``), so a crash loses at most the items in flight; a torn last line is cut off
on the next load. The final files are a pure function of the step logs, rebuilt in input
order at the end of every run: an interrupted and resumed run writes the same bytes as an
uninterrupted one.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from p2r_eval.core.atomic_files import write_text_atomically
from p2r_eval.core.jsonio import json_text, jsonl_lines
from p2r_eval.eval.runstore import RunStore

STEPS = ("generate", "verify", "judge")
STEP_FILES = {"generate": "generated.jsonl", "verify": "verified.jsonl", "judge": "judged.jsonl"}
RUN_FILE = "run.json"
COT_FILE = "cot.jsonl"
DROPPED_FILE = "dropped.jsonl"
SUMMARY_FILE = "summary.json"
JUDGE_CACHE_DIR = "judge_cache"

StepState = dict[str, dict[str, dict[str, Any]]]
"""``{step: {item id: latest log entry}}``."""


class AnnotationStore(RunStore):
    """A run store whose "tasks" are the three steps; appends are safe across threads."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._append_lock = threading.Lock()

    @property
    def results_path(self) -> Path:
        return self.root / RUN_FILE

    def samples_path(self, task: str) -> Path:
        return self.root / "steps" / STEP_FILES[task]

    def read_run_info(self) -> dict[str, Any] | None:
        """run.json (settings, teacher and judge identity), None before the first run."""
        info = self.read_named_json(RUN_FILE)
        return info if isinstance(info, dict) else None

    def write_run_info(self, info: dict[str, Any]) -> None:
        """Atomically replace run.json."""
        self.write_named_json(RUN_FILE, info)

    def load_state(self) -> StepState:
        """Every step's entries by item id (a later line for an id supersedes an earlier)."""
        return {step: self.load_records(step) for step in STEPS}

    def peek_state(self) -> StepState:
        """The step entries as :meth:`load_state` gives them, without repairing or locking
        anything: safe while another process writes the folder (an unfinished last line
        is skipped)."""
        state: StepState = {step: {} for step in STEPS}
        for step in STEPS:
            path = self.samples_path(step)
            lines = jsonl_lines(path.read_text(encoding="utf-8")) if path.is_file() else []
            for line in lines:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                state[step][str(entry["id"])] = entry
        return state

    def append_step(self, state: StepState, step: str, entry: dict[str, Any]) -> None:
        """Make ``entry`` durable in the step's log, then record it in ``state``."""
        with self._append_lock:
            self.append_record(step, entry)
            state[step][str(entry["id"])] = entry

    def write_jsonl(self, name: str, records: Iterable[dict[str, Any]]) -> int:
        """Atomically replace ``name`` with one JSON line per record (streamed, so a large
        dataset is never held as one string); returns the count."""
        path = self.root / name
        temporary = path.with_name(path.name + ".tmp")
        count = 0
        with temporary.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json_text(record) + "\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        return count

    def write_named_json(self, name: str, data: dict[str, Any]) -> None:
        """Atomically replace the folder's JSON file ``name``."""
        write_text_atomically(self.root / name, json_text(data, indent=2) + "\n")

    def read_named_json(self, name: str) -> dict[str, Any] | None:
        """The folder's JSON file ``name``, None when it does not exist."""
        path = self.root / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

