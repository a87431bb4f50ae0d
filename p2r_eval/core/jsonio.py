"""JSON of untrusted content, written and read without surprises.

:func:`json_text` writes text as it is (no ASCII escaping, so files stay readable) yet always
encodable as UTF-8, lone surrogates included (see :mod:`p2r_eval.core.unicode_text`).
:func:`parse_json` reads like ``json.loads`` but reports a document nested too deeply for
Python's parser as the ``json.JSONDecodeError`` every reader already handles, instead of a
``RecursionError`` that would end the program.
"""

from __future__ import annotations

import json
from typing import Any

from p2r_eval.core.unicode_text import LONE_SURROGATE


def json_text(value: Any, **dumps_options: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, **dumps_options)`` that always encodes as UTF-8:
    lone surrogates, which that leaves raw inside strings, are written as ``\\uXXXX`` escapes,
    which ``json.loads`` reads back to the same string. (Two surrogates that happen to form
    a pair read back as the one character they encode.)"""
    text = json.dumps(value, ensure_ascii=False, **dumps_options)
    return LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def jsonl_lines(text: str) -> list[str]:
    """The lines of a JSON Lines text, split at ``"\\n"`` only (a final newline ends the last
    line, it does not start an empty one).

    ``str.splitlines`` also splits at U+2028, U+2029, U+0085 and a few ASCII separators, which
    ``json.dumps(..., ensure_ascii=False)`` writes unescaped inside strings: a model output
    holding one of them would be cut in two and its line could no longer be read.
    """
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def parse_json(text: str | bytes) -> Any:
    """``json.loads(text)``; a document nested too deeply raises ``json.JSONDecodeError``."""
    try:
        return json.loads(text)
    except RecursionError:
        document = text if isinstance(text, str) else ""
        raise json.JSONDecodeError("nested too deeply to read", document, 0) from None


class NotUTF8Error(ValueError):
    """Bytes that are not UTF-8 text; the message and ``line`` (1-based) say where."""

    def __init__(self, line: int, column: int, byte: int) -> None:
        super().__init__(f"line {line}, column {column}: not UTF-8 text (byte 0x{byte:02x})")
        self.line = line


def utf8_text(data: bytes) -> str:
    """``data`` decoded as UTF-8, or :class:`NotUTF8Error` naming the first bad byte's line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        raise NotUTF8Error(data.count(b"\n", 0, error.start) + 1, error.start - line_start + 1,
                           data[error.start]) from None
