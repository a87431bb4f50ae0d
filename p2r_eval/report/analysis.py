"""Process analysis of a run's samples: how the model perceives and reasons, not only whether
it answers right.

For samples of the results contract (:class:`p2r_eval.eval.results.Sample`: ``id``, ``output``,
the raw model text, ``None`` for an item that failed to generate, ``score`` in [0, 1] or
``None``, ``answer_type`` and, for a multiple-choice item, ``options``),
:func:`analyze_samples` reports:

* **Format compliance per segment.** A segment (``observation``, ``think``, ``answer``) is
  compliant when :meth:`Segments.deviations` names no problem with it (missing, empty,
  unclosed, duplicated, stray closing tag). *Well formed* means no deviation at all.
* **Segment lengths**, over the samples where the segment is present: tokens of the given
  tokenizer (``tokenizer.encode(text, add_special_tokens=False)``), else whitespace-separated
  words. The unit is recorded (``length_unit``).
* **Think-answer mismatch**: see :func:`think_answer_check` for the exact definition. The
  rate is mismatches over samples whose conclusion and answer were both determined;
  undetermined and not-applicable samples are counted and reported, never in the rate.
* **Error attribution** of wrong answers with the observation-sufficiency verdicts: a wrong
  answer whose observation was judged insufficient is a *perception* failure, one whose
  observation was judged sufficient is a *reasoning* failure, one without a verdict (none
  given, or unparsable) is *unknown*. A sample is correct when ``score >= threshold`` of its
  answer type (:data:`CORRECT_THRESHOLDS`: 1.0 for the categorical types, 0.5 for the
  continuous ones); samples without a score are left out.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any

from tabulate import tabulate

from p2r_eval.core.answer_types import ANSWER_TYPE_RECORDS
from p2r_eval.core.items import option_letter
from p2r_eval.core.scoring import parse_number
from p2r_eval.core.template import TAGS, parse
from p2r_eval.eval.results import Sample
from p2r_eval.judge.verdicts import Verdict

CORRECT_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {name: record.correct_threshold for name, record in ANSWER_TYPE_RECORDS.items()}
)
"""Each answer type's ``correct_threshold`` (:mod:`p2r_eval.core.answer_types`)."""
ALL_LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")

_STANDALONE_CAPITAL = re.compile(r"(?<![A-Za-z0-9])([A-Z])(?![A-Za-z0-9])")
_LOWERCASE_WORD_NEXT = re.compile(r"\s+[a-z]")
_COMMITMENT_BEFORE = re.compile(
    r"\b(option|answer|choice|choose|chose|select|pick|is|be)\W{0,3}$", re.IGNORECASE
)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?")

MATCH, MISMATCH, UNDETERMINED, NOT_APPLICABLE = "match", "mismatch", "undetermined", "n/a"
PERCEPTION, REASONING, UNKNOWN = "perception", "reasoning", "unknown"


# -- think-answer mismatch ---------------------------------------------------------------
@dataclass(frozen=True)
class ThinkAnswerCheck:
    """``status``: ``match``, ``mismatch``, ``undetermined`` or ``n/a``; ``conclusion`` and
    ``answer``: what was extracted from the think segment and the answer segment."""

    status: str
    conclusion: str | None = None
    answer: str | None = None


def option_letters(options: Sequence[str] | None) -> tuple[str, ...]:
    """The letters that name options: from the option strings (``"B. …"`` -> ``B``), or every
    capital letter when the options are unknown."""
    letters = tuple(letter for letter in map(option_letter, options or ()) if letter)
    return letters or ALL_LETTERS


def last_committed_letter(text: str, letters: Sequence[str]) -> str | None:
    """The last option letter ``text`` commits to.

    A candidate is a capital letter among ``letters`` standing alone (no letter or digit on
    either side). A candidate directly followed by whitespace and a lowercase word is prose
    (the article "A man", the pronoun "I think") and is skipped, unless a commitment word
    precedes it ("option A is", "the answer is B but", "choose C and"). The last candidate
    left is the conclusion.
    """
    conclusion = None
    for match in _STANDALONE_CAPITAL.finditer(text):
        letter = match.group(1)
        if letter not in letters:
            continue
        prose = _LOWERCASE_WORD_NEXT.match(text, match.end()) is not None
        if prose and not _COMMITMENT_BEFORE.search(text[: match.start()]):
            continue
        conclusion = letter
    return conclusion


def answer_letter(answer: str, letters: Sequence[str]) -> str | None:
    """The option letter an answer segment gives: a lone letter (``"B"``) or an option
    written out (``"B. red car"``, ``"(B)"``); ``None`` otherwise."""
    text = answer.strip()
    letter = text if len(text) == 1 else option_letter(text)
    return letter if letter in letters else None


def last_number(text: str) -> str | None:
    """The last number written in ``text`` (``-12``, ``3.5``, ``1,200``), as written. Digits
    inside words (``Qwen2.5``, ``v2``) do not count."""
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def _decimals(number: str) -> int:
    return len(number.split(".", 1)[1]) if "." in number else 0


def numbers_agree(first: str, second: str) -> bool:
    """Equal at the precision of the less precise of the two: ``3.333`` agrees with
    ``3.33``, ``3`` with ``3.0``, ``2.46`` with ``2.5``; ``100`` does not agree with ``101``."""
    a, b = parse_number(first), parse_number(second)
    if a is None or b is None:
        return False
    places = min(_decimals(first), _decimals(second))
    return round(a, places) == round(b, places)


def think_answer_check(
    output: str, answer_type: str, options: Sequence[str] | None = None
) -> ThinkAnswerCheck:
    """Whether the conclusion reached in ``<think>`` is the answer given in ``<answer>``.

    Segments are those of :func:`p2r_eval.core.template.parse`. The conclusion of the think text,
    by the answer type's ``think_answer_form``: a letter (multiple choice), the last option
    letter it commits to (:func:`last_committed_letter`); a number (numerical, regression),
    the last number in it (:func:`last_number`). The answer: the
    option letter of the answer segment (:func:`answer_letter`), or its number (the whole
    answer when it parses as one, else its last number). Letters must be equal; numbers must
    agree (:func:`numbers_agree`). Undetermined when the think or answer segment is missing,
    or nothing can be extracted from one of them; n/a for other answer types.
    """
    record = ANSWER_TYPE_RECORDS.get(answer_type)
    form = record.think_answer_form if record is not None else None
    if form is None:
        return ThinkAnswerCheck(NOT_APPLICABLE)
    segments = parse(output)
    if segments.think is None or segments.answer is None:
        return ThinkAnswerCheck(UNDETERMINED)
    if form == "letter":
        letters = option_letters(options)
        conclusion = last_committed_letter(segments.think, letters)
        answer = answer_letter(segments.answer, letters)
        agree = conclusion == answer
    else:
        conclusion = last_number(segments.think)
        stripped = segments.answer.strip()
        answer = stripped if parse_number(stripped) is not None else last_number(stripped)
        agree = conclusion is not None and answer is not None and numbers_agree(conclusion, answer)
    if conclusion is None or answer is None:
        return ThinkAnswerCheck(UNDETERMINED, conclusion, answer)
    return ThinkAnswerCheck(MATCH if agree else MISMATCH, conclusion, answer)


def think_answer_mismatch(
    output: str, answer_type: str, options: Sequence[str] | None = None
) -> bool | None:
    """``True`` when think and answer disagree, ``False`` when they agree, ``None`` when it
    cannot be told (see :func:`think_answer_check` for the definition)."""
    status = think_answer_check(output, answer_type, options).status
    return {MATCH: False, MISMATCH: True}.get(status)


# -- per-sample and aggregate results ---------------------------------------------------------
@dataclass(frozen=True)
class SampleProcess:
    """The process view of one sample."""

    id: str
    well_formed: bool
    deviations: list[str]
    lengths: dict[str, int]
    think_answer: str
    conclusion: str | None
    answer: str | None
    correct: bool | None
    sufficient: bool | None
    failure: str | None


@dataclass(frozen=True)
class SegmentStats:
    present: int
    compliant: int
    compliance_rate: float | None
    mean_length: float | None
    median_length: float | None
    min_length: int | None
    max_length: int | None


@dataclass(frozen=True)
class MismatchStats:
    matches: int
    mismatches: int
    undetermined: int
    not_applicable: int
    rate: float | None


@dataclass(frozen=True)
class AttributionStats:
    scored: int
    correct: int
    wrong: int
    perception: int
    reasoning: int
    unknown: int
    correct_with_insufficient_observation: int

    def share(self, count: int) -> float | None:
        return count / self.wrong if self.wrong else None


@dataclass(frozen=True)
class ProcessAnalysis:
    """Aggregates over the analysed samples (those with an output); ``errored`` counts the
    samples without one."""

    samples: int
    errored: int
    required: tuple[str, ...]
    length_unit: str
    well_formed: int
    well_formed_rate: float | None
    deviation_counts: dict[str, int]
    segments: dict[str, SegmentStats]
    mismatch: MismatchStats
    attribution: AttributionStats
    per_sample: list[SampleProcess] = field(repr=False)

    def as_dict(self, *, include_samples: bool = False) -> dict[str, Any]:
        """JSON-ready results; per-sample records only when asked (they can be large)."""
        result = asdict(self)
        result["required"] = list(self.required)
        attribution = result["attribution"]
        for name in (PERCEPTION, REASONING, UNKNOWN):
            attribution[f"{name}_share"] = self.attribution.share(attribution[name])
        if not include_samples:
            del result["per_sample"]
        return result


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _length_counter(tokenizer: Any):
    if tokenizer is None:
        return "words", lambda text: len(text.split())
    return "tokens", lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def _verdict_value(value: Verdict | bool | None) -> bool | None:
    return value.sufficient if isinstance(value, Verdict) else value


def is_correct(
    score: float | None, answer_type: str, thresholds: Mapping[str, float]
) -> bool | None:
    """``score >= threshold`` of the answer type (1.0 for unknown types); ``None`` unscored."""
    if score is None:
        return None
    return score >= thresholds.get(answer_type, 1.0)


def failure_kind(correct: bool | None, sufficient: bool | None) -> str | None:
    """Perception, reasoning or unknown for a wrong answer; ``None`` otherwise."""
    if correct is not False:
        return None
    if sufficient is None:
        return UNKNOWN
    return REASONING if sufficient else PERCEPTION


def analyze_sample(
    sample: Sample,
    output: str,
    answer_type: str,
    *,
    required: tuple[str, ...],
    count_length: Any,
    sufficient: bool | None,
    thresholds: Mapping[str, float],
) -> SampleProcess:
    """The process view of a generated ``sample`` (its ``output`` and ``answer_type``)."""
    segments = parse(output)
    deviations = segments.deviations(required)
    check = think_answer_check(output, answer_type, sample.options)
    correct = is_correct(sample.score, answer_type, thresholds)
    return SampleProcess(
        id=str(sample.id),
        well_formed=not deviations,
        deviations=deviations,
        lengths={
            tag: count_length(segments.contents[tag]) for tag in TAGS if segments.present(tag)
        },
        think_answer=check.status,
        conclusion=check.conclusion,
        answer=check.answer,
        correct=correct,
        sufficient=sufficient,
        failure=failure_kind(correct, sufficient),
    )


def _segment_stats(tag: str, processes: Sequence[SampleProcess]) -> SegmentStats:
    lengths = [p.lengths[tag] for p in processes if tag in p.lengths]
    compliant = sum(not any(d.endswith(f":{tag}") for d in p.deviations) for p in processes)
    return SegmentStats(
        present=len(lengths),
        compliant=compliant,
        compliance_rate=_rate(compliant, len(processes)),
        mean_length=statistics.fmean(lengths) if lengths else None,
        median_length=statistics.median(lengths) if lengths else None,
        min_length=min(lengths, default=None),
        max_length=max(lengths, default=None),
    )


def _mismatch_stats(processes: Sequence[SampleProcess]) -> MismatchStats:
    counts = Counter(p.think_answer for p in processes)
    determined = counts[MATCH] + counts[MISMATCH]
    return MismatchStats(
        matches=counts[MATCH],
        mismatches=counts[MISMATCH],
        undetermined=counts[UNDETERMINED],
        not_applicable=counts[NOT_APPLICABLE],
        rate=_rate(counts[MISMATCH], determined),
    )


def _attribution_stats(processes: Sequence[SampleProcess]) -> AttributionStats:
    failures = Counter(p.failure for p in processes)
    return AttributionStats(
        scored=sum(p.correct is not None for p in processes),
        correct=sum(p.correct is True for p in processes),
        wrong=sum(p.correct is False for p in processes),
        perception=failures[PERCEPTION],
        reasoning=failures[REASONING],
        unknown=failures[UNKNOWN],
        correct_with_insufficient_observation=sum(
            p.correct is True and p.sufficient is False for p in processes
        ),
    )


def analyze_samples(
    samples: Sequence[Sample],
    tokenizer: Any = None,
    verdicts: Mapping[Any, Verdict | bool | None] | None = None,
    *,
    required: tuple[str, ...] = TAGS,
    correct_thresholds: Mapping[str, float] = CORRECT_THRESHOLDS,
) -> ProcessAnalysis:
    """The process analysis of ``samples`` (see the module docstring for every definition).

    ``verdicts`` maps sample ids (as in the samples, or as strings) to observation-sufficiency
    verdicts (a :class:`Verdict`, a bool, or ``None``). ``required`` are the segments the
    prompt style asks for (the process-aware three by default; ``("think", "answer")`` for
    Video-R1's style).
    """
    unit, count_length = _length_counter(tokenizer)
    verdicts = verdicts or {}
    generated = [(sample, sample.output, sample.answer_type)
                 for sample in samples if sample.output is not None]
    for sample, _, answer_type in generated:
        if answer_type is None:
            raise ValueError(f"sample {sample.id!r} has an output but no answer_type")
    processes = [
        analyze_sample(
            sample,
            output,
            answer_type,
            required=required,
            count_length=count_length,
            sufficient=_verdict_value(verdicts.get(sample.id, verdicts.get(str(sample.id)))),
            thresholds=correct_thresholds,
        )
        for sample, output, answer_type in generated if answer_type is not None
    ]
    well_formed = sum(p.well_formed for p in processes)
    return ProcessAnalysis(
        samples=len(processes),
        errored=len(samples) - len(processes),
        required=required,
        length_unit=unit,
        well_formed=well_formed,
        well_formed_rate=_rate(well_formed, len(processes)),
        deviation_counts=dict(Counter(d for p in processes for d in p.deviations)),
        segments={tag: _segment_stats(tag, processes) for tag in TAGS},
        mismatch=_mismatch_stats(processes),
        attribution=_attribution_stats(processes),
        per_sample=processes,
    )


# -- rendering --------------------------------------------------------------------------------
def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _segment_table(analysis: ProcessAnalysis) -> str:
    unit = analysis.length_unit
    rows = [
        [
            tag if tag in analysis.required else f"{tag} (not required)",
            stats.present,
            _percent(stats.compliance_rate),
            _number(stats.mean_length),
            _number(stats.median_length),
            "–" if stats.max_length is None else stats.max_length,
        ]
        for tag, stats in analysis.segments.items()
    ]
    well_formed = _percent(analysis.well_formed_rate)
    rows.append(["all (well formed)", analysis.well_formed, well_formed, "", "", ""])
    headers = ["segment", "present", "compliant", f"mean {unit}", f"median {unit}", "max"]
    return tabulate(rows, headers=headers, tablefmt="github")


def _mismatch_table(mismatch: MismatchStats) -> str:
    row = [
        mismatch.matches + mismatch.mismatches,
        mismatch.mismatches,
        _percent(mismatch.rate),
        mismatch.undetermined,
        mismatch.not_applicable,
    ]
    headers = ["determined", "mismatches", "mismatch rate", "undetermined", "n/a"]
    return tabulate([row], headers=headers, tablefmt="github")


def _attribution_table(attribution: AttributionStats) -> str:
    def with_share(count: int) -> str:
        return f"{count} ({_percent(attribution.share(count))})"

    row = [
        attribution.scored,
        attribution.wrong,
        with_share(attribution.perception),
        with_share(attribution.reasoning),
        with_share(attribution.unknown),
        attribution.correct_with_insufficient_observation,
    ]
    headers = [
        "scored",
        "wrong",
        "perception",
        "reasoning",
        "unknown",
        "correct, insufficient obs.",
    ]
    return tabulate([row], headers=headers, tablefmt="github")


def render_analysis_table(analysis: ProcessAnalysis) -> str:
    """The analysis as markdown: format and lengths per segment, think-answer consistency,
    and the attribution of wrong answers (shares are of the wrong answers)."""
    parts = [
        f"### Format and length ({analysis.samples} samples, {analysis.errored} errored; "
        f"lengths in {analysis.length_unit})",
        _segment_table(analysis),
        "### Think-answer consistency",
        _mismatch_table(analysis.mismatch),
        "### Error attribution of wrong answers",
        _attribution_table(analysis.attribution),
    ]
    return "\n\n".join(parts) + "\n"
