"""Rendering untrusted text (model outputs, names taken from data files, results files or the
command line) so that it cannot act: no markup, no broken table, no terminal escape sequence.

Stored data keeps such text verbatim (JSON escapes what it must); only renderings for people
(markdown reports, tables printed on a terminal) go through these functions.
"""

from __future__ import annotations

import html


def visible_controls(text: str) -> str:
    """``text`` with every character that is not printable written as a ``\\uXXXX`` escape:
    control characters (ESC of a terminal colour sequence, NUL, line breaks), invisible format
    characters (bidirectional overrides, zero-width spaces) and line separators. Nothing is
    left that a terminal or a viewer would act on or hide; ordinary text is unchanged."""
    return "".join(char if char.isprintable() else f"\\u{ord(char):04x}" for char in str(text))


def escape_markdown(text: str) -> str:
    """Make untrusted text inert in a markdown table cell: line breaks flattened, control
    characters made visible, HTML escaped, markdown punctuation and pipes backslash-escaped."""
    text = visible_controls(" ".join(str(text).split()))
    text = html.escape(text, quote=False)
    for char in "\\`*_[]|~":
        text = text.replace(char, "\\" + char)
    return text


def plot_label(text: str) -> str:
    """Untrusted text as a literal matplotlib label: control characters made visible and
    dollar signs escaped (matplotlib reads ``$...$`` as a formula, and a malformed one such
    as ``$$`` makes the whole figure fail to draw)."""
    return visible_controls(text).replace("$", r"\$")
