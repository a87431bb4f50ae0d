"""Text that is not valid Unicode: lone UTF-16 surrogates.

JSON may escape half of a UTF-16 pair (``"\\ud800"``), and Python reads such a string, like a
file name that is not UTF-8 (``os.fsdecode``), into a ``str`` holding lone surrogates. No
UTF-8 encoder, tokenizer or HTTP client accepts them. p2r keeps such text verbatim where it
stores it (:func:`p2r_eval.core.jsonio.json_text`) and replaces each lone surrogate with U+FFFD
where it hands text on to a model or a judge (:func:`valid_unicode`).
"""

from __future__ import annotations

import re

LONE_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT_CHARACTER = "\ufffd"


def valid_unicode(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (valid text is unchanged)."""
    return LONE_SURROGATE.sub(REPLACEMENT_CHARACTER, text)

