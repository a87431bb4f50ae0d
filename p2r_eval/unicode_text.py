"""Text that is not valid Unicode: lone UTF-16 surrogates.

JSON may escape half of a UTF-16 pair (``"\\ud800"``), and Python reads such a string, like a
file name that is not UTF-8 (``os.fsdecode``), into a ``str`` holding lone surrogates. No
UTF-8 encoder, tokenizer or HTTP client accepts them. p2r keeps such text verbatim where it
stores it (:func:`json_text`) and replaces each lone surrogate with U+FFFD where it hands
text on to a model or a judge (:func:`valid_unicode`).
"""

from __future__ import annotations

import json
import re
from typing import Any

LONE_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT_CHARACTER = "\ufffd"


def valid_unicode(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (valid text is unchanged)."""
    return LONE_SURROGATE.sub(REPLACEMENT_CHARACTER, text)


def json_text(value: Any, **dumps_options: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, **dumps_options)`` that always encodes as UTF-8:
    lone surrogates, which that leaves raw inside strings, are written as ``\\uXXXX`` escapes,
    which ``json.loads`` reads back to the same string. (Two surrogates that happen to form
    a pair read back as the one character they encode.)"""
    text = json.dumps(value, ensure_ascii=False, **dumps_options)
    return LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
