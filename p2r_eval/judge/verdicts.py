"""What the judge answers: the :class:`Verdict`, the queries, and the reply parser.

The judge is asked for ``<verdict>yes|no</verdict><rationale>…</rationale>``. Parsing is
lenient about case, spacing and a few synonyms, and strict about meaning: a reply without a
recognisable verdict gives ``sufficient=None`` with the raw reply kept, never a silent "no".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

_VERDICT_TAG = re.compile(r"<verdict>\s*([A-Za-z]+)\s*[.!]?\s*</verdict>", re.IGNORECASE)
_RATIONALE_TAG = re.compile(r"<rationale>(.*?)(?:</rationale>|$)", re.IGNORECASE | re.DOTALL)
_BARE_REPLY = re.compile(r"^\W*([A-Za-z]+)\W*$")
_VERDICT_WORDS = {
    "yes": True,
    "sufficient": True,
    "true": True,
    "correct": True,
    "no": False,
    "insufficient": False,
    "false": False,
    "incorrect": False,
}


@dataclass(frozen=True)
class Verdict:
    """One judgement.

    ``sufficient`` is the answer to the question asked: in sufficiency mode, whether the
    observation suffices; in grading mode, whether the prediction matches the reference
    (also readable as :attr:`correct`). ``None`` means the reply could not be parsed; ``raw``
    keeps it. ``cached`` verdicts cost nothing now; their token counts are those of the call
    that produced them. ``retries`` counts failed attempts before the answer arrived.
    """

    sufficient: bool | None
    rationale: str
    raw: str
    model: str
    prompt_version: str
    cached: bool
    input_tokens: int
    output_tokens: int
    retries: int
    mode: str = "sufficiency"

    @property
    def correct(self) -> bool | None:
        """The grading-mode reading of :attr:`sufficient`."""
        return self.sufficient

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SufficiencyQuery:
    """One sufficiency question; ``id`` names the item in errors and logs."""

    question: str
    options: Sequence[str]
    answer: str
    observation: str
    id: str = ""


@dataclass(frozen=True)
class GradeQuery:
    """One grading question; ``id`` names the item in errors and logs."""

    question: str
    reference: str
    prediction: str
    id: str = ""


@dataclass(frozen=True)
class ParsedReply:
    sufficient: bool | None
    rationale: str = ""


def parse_verdict_reply(raw: str) -> ParsedReply:
    """The verdict and rationale of a judge reply.

    The verdict is the last ``<verdict>`` tag holding a known word (yes/no and synonyms); a
    reply that is a single such word also counts. Anything else gives ``sufficient=None``.
    """
    words = [m.group(1).lower() for m in _VERDICT_TAG.finditer(raw)]
    known = [w for w in words if w in _VERDICT_WORDS]
    if not known:
        bare = _BARE_REPLY.match(raw)
        known = [bare.group(1).lower()] if bare and bare.group(1).lower() in _VERDICT_WORDS else []
    rationale_match = _RATIONALE_TAG.search(raw)
    rationale = rationale_match.group(1).strip() if rationale_match else ""
    return ParsedReply(_VERDICT_WORDS[known[-1]] if known else None, rationale)
