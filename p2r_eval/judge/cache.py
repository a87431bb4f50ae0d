"""The on-disk cache of judge replies: a re-run costs zero calls.

One SQLite file (WAL journal) per cache directory: safe for many threads and processes at
once, every write committed before the verdict is returned. The key is a SHA-256 of the
backend kind, model, prompt version, mode, generation limit and normalized inputs. What is
stored is the raw reply and its token counts, never a credential; the verdict is parsed
again on every read, so a better parser applies to old replies without new calls.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2r_eval.core.unicode_text import valid_unicode
from p2r_eval.judge.base import JudgeConfigError

CACHE_FILE_NAME = "judge_cache.sqlite3"
# How long an access waits for another process's lock on the cache.
LOCK_WAIT_S = 60.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    raw TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    mode TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    source TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""


def cache_key(
    *, kind: str, model: str, prompt_version: str, mode: str, inputs: Mapping[str, Any]
) -> str:
    """The SHA-256 hex digest identifying one judge request."""
    material = {
        "kind": kind,
        "model": model,
        "prompt_version": prompt_version,
        "mode": mode,
        "inputs": dict(inputs),
    }
    encoded = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


@dataclass(frozen=True)
class CachedReply:
    """A stored reply. ``source`` is ``"live"`` or ``"batch"`` (Message Batches API). A lone
    surrogate in the reply text (a JSON body may escape one) is kept as U+FFFD: SQLite stores
    only valid text, and the first run and a re-run from the cache then see the same reply."""

    raw: str
    model: str
    prompt_version: str
    mode: str
    input_tokens: int
    output_tokens: int
    source: str = "live"

    def __post_init__(self) -> None:
        object.__setattr__(self, "raw", valid_unicode(self.raw))


class ReplyCache:
    """The cache in ``directory`` (created if needed), in the file ``file_name`` there (the
    served-model backend keeps its replies in a file of its own)."""

    def __init__(self, directory: Path, file_name: str = CACHE_FILE_NAME) -> None:
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OSError(f"cannot create judge cache directory {directory}: {error}") from error
        self.path = directory / file_name
        try:
            self._enable_write_ahead_log()
            with self._connection() as connection:
                connection.execute(_SCHEMA)
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as error:  # not a database, or a malformed one
            raise JudgeConfigError(
                f"judge cache {self.path} is damaged ({error}); move it away (a new cache "
                "starts empty: its replies are asked for again) or choose another "
                "--judge-cache") from None

    def _enable_write_ahead_log(self) -> None:
        """WAL mode, so readers never block the writer. The switch takes a lock SQLite does
        not wait for, so processes opening a new cache at once (a distributed launch) retry
        it until the lock wait would have run out."""
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                with self._connection() as connection:
                    connection.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=LOCK_WAIT_S)) as connection:
            with connection:
                yield connection

    def get(self, key: str) -> CachedReply | None:
        with self._connection() as connection:
            row = connection.execute(
                "SELECT raw, model, prompt_version, mode, input_tokens, output_tokens, source "
                "FROM replies WHERE key = ?",
                (key,),
            ).fetchone()
        return CachedReply(*row) if row else None

    def put(self, key: str, reply: CachedReply) -> None:
        with self._connection() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    reply.raw,
                    reply.model,
                    reply.prompt_version,
                    reply.mode,
                    reply.input_tokens,
                    reply.output_tokens,
                    reply.source,
                    time.time(),
                ),
            )

    def __len__(self) -> int:
        with self._connection() as connection:
            return connection.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
