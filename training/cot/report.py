"""What an annotation run produced: each item's outcome, the output records, the summary.

Everything here is computed from the input records and the step logs alone, so the final
files are the same whether the run went through in one go, was resumed, or ran as shards.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from p2r_train.cot.records import VQARecord
from p2r_train.cot.store import STEPS, StepState
from tabulate import tabulate

from p2r_eval.core.template import parse
from p2r_eval.core.untrusted import visible_controls
from p2r_eval.judge.usage import price_per_mtok

STATUSES = ("kept", "dropped", "failed", "pending")


@dataclass(frozen=True)
class ItemOutcome:
    """Where an item stands: ``kept`` (passed every step), ``dropped`` or ``failed`` at
    ``step`` for ``reason``, or ``pending`` at ``step`` (not run yet)."""

    status: str
    step: str | None
    reason: str | None = None
    detail: str | None = None


def item_outcome(item_id: str, state: StepState) -> ItemOutcome:
    for step in STEPS:
        entry = state[step].get(item_id)
        if entry is None:
            return ItemOutcome("pending", step)
        if entry["status"] in ("dropped", "failed"):
            return ItemOutcome(entry["status"], step, entry.get("reason"), entry.get("detail"))
    return ItemOutcome("kept", None)


def annotation_fields(record: VQARecord, state: StepState, run: dict[str, Any]) -> dict[str, Any]:
    """The pipeline metadata of an item: its reward, each step's verdict, models and prompts."""
    generated = state["generate"].get(record.id)
    verified = state["verify"].get(record.id)
    judged = state["judge"].get(record.id)
    return {
        "reward": verified["score"] if verified and "score" in verified else None,
        "verdicts": {
            "generate": _verdict(generated, ("prompt_hash",)),
            "verify": _verdict(verified, ("rule", "score", "threshold", "prediction", "truth",
                                          "deviations")),
            "judge": _verdict(judged, ("sufficient", "rationale")),
        },
        "teacher_model": run["teacher"]["spec"],
        "judge_model": judged.get("model") if judged else None,
        "prompt_versions": {
            "teacher": run["teacher"]["prompt_version"],
            "judge": judged.get("prompt_version") if judged else None,
        },
        "source_index": record.position,
    }


def _verdict(entry: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    if entry is None:
        return None
    picked = {"status": entry["status"], "reason": entry.get("reason")}
    return picked | {key: entry[key] for key in keys if key in entry}


def release_record(record: VQARecord, state: StepState, run: dict[str, Any]) -> dict[str, Any]:
    """A kept item in the VideoP2R-CoT release format: the input fields, the trace split into
    ``observation``, ``process`` (the think segment) and ``answer``, the full ``output``,
    and the pipeline metadata."""
    output = state["generate"][record.id]["output"]
    segments = parse(output)
    return {
        **record.fields,
        "observation": (segments.observation or "").strip(),
        "process": (segments.think or "").strip(),
        "answer": state["verify"][record.id]["prediction"],
        "output": output,
        "select": True,
        **annotation_fields(record, state, run),
    }


def dropped_record(
    record: VQARecord, outcome: ItemOutcome, state: StepState, run: dict[str, Any]
) -> dict[str, Any]:
    """A dropped or failed item: the input fields, where and why, and what the steps made."""
    generated = state["generate"].get(record.id, {})
    return {
        **record.fields,
        "output": generated.get("output"),
        "select": False,
        "status": outcome.status,
        "step": outcome.step,
        "reason": outcome.reason,
        "detail": outcome.detail,
        **annotation_fields(record, state, run),
    }


def kept_records(
    records: Sequence[VQARecord], state: StepState, run: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """The release records of kept items, in input order."""
    for record in records:
        if item_outcome(record.id, state).status == "kept":
            yield release_record(record, state, run)


def dropped_records(
    records: Sequence[VQARecord], state: StepState, run: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """The records of dropped and failed items, in input order (pending items are in neither
    file)."""
    for record in records:
        outcome = item_outcome(record.id, state)
        if outcome.status in ("dropped", "failed"):
            yield dropped_record(record, outcome, state, run)


def summarize(records: Sequence[VQARecord], state: StepState) -> dict[str, Any]:
    """Counts of items in, kept, dropped, failed and pending: in total, per step and reason,
    per problem type; template deviations; judge usage."""
    outcomes = {record.id: item_outcome(record.id, state) for record in records}
    totals = Counter(outcome.status for outcome in outcomes.values())
    return {
        "items_in": len(records),
        **{status: totals[status] for status in STATUSES},
        "complete": totals["pending"] == 0,
        "steps": _step_counts(outcomes),
        "deviations": _deviation_counts(records, state),
        "by_problem_type": _problem_type_counts(records, outcomes),
        "judge_usage": judge_usage(records, state),
    }


def _step_counts(outcomes: dict[str, ItemOutcome]) -> dict[str, Any]:
    """Per step: items that reached it, passed it, and were dropped, failed or wait there."""
    steps: dict[str, Any] = {}
    for index, step in enumerate(STEPS):
        reached = [o for o in outcomes.values()
                   if o.status == "kept" or STEPS.index(o.step or "") >= index]
        decided = [o for o in reached if o.step == step]
        steps[step] = {
            "in": len(reached),
            "passed": len(reached) - len(decided),
            "dropped": _reasons(decided, "dropped"),
            "failed": _reasons(decided, "failed"),
            "pending": sum(1 for o in decided if o.status == "pending"),
        }
    return steps


def _reasons(outcomes: Sequence[ItemOutcome], status: str) -> dict[str, int]:
    return dict(sorted(Counter(str(o.reason) for o in outcomes if o.status == status).items()))


def _deviation_counts(records: Sequence[VQARecord], state: StepState) -> dict[str, int]:
    """How often each template deviation was seen (an output can show several)."""
    counts: Counter[str] = Counter()
    for record in records:
        verified = state["verify"].get(record.id)
        if verified:
            counts.update(verified.get("deviations") or [])
    return dict(sorted(counts.items()))


def _problem_type_counts(
    records: Sequence[VQARecord], outcomes: dict[str, ItemOutcome]
) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for record in records:
        row = table.setdefault(record.problem_type, {"in": 0} | dict.fromkeys(STATUSES, 0))
        row["in"] += 1
        row[outcomes[record.id].status] += 1
    return dict(sorted(table.items()))


def judge_usage(records: Sequence[VQARecord], state: StepState) -> dict[str, Any]:
    """The judge's work on these items, from the step log: replies obtained live and from the
    cache (``verdicts`` counts replies, ``no_verdict`` those without a readable verdict),
    ``errors`` (no reply after the retries), tokens of the live replies, retries, and an
    estimated cost (list prices of :mod:`p2r_eval.judge.usage`; ``None`` for a model without
    a known price). A reply cached by an earlier run counts as cached: its cost was paid then."""
    entries = [state["judge"][r.id] for r in records if r.id in state["judge"]]
    verdicts = [e for e in entries if "model" in e]
    live = [e for e in verdicts if not e["cached"]]
    models = sorted({e["model"] for e in verdicts})
    input_tokens = sum(e["input_tokens"] for e in live)
    output_tokens = sum(e["output_tokens"] for e in live)
    return {
        "models": models,
        "verdicts": len(verdicts),
        "live": len(live),
        "cached": len(verdicts) - len(live),
        "no_verdict": sum(1 for e in entries if e.get("reason") == "judge_no_verdict"),
        "errors": sum(1 for e in entries if e.get("reason") == "judge_error"),
        "retries": sum(e.get("retries", 0) for e in verdicts),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "estimated_cost_usd": _estimated_cost(live),
    }


def _estimated_cost(live: Sequence[dict[str, Any]]) -> float | None:
    cost = 0.0
    for entry in live:
        price = price_per_mtok(entry["model"])
        if price is None:
            return None
        cost += (entry["input_tokens"] * price[0] + entry["output_tokens"] * price[1]) / 1e6
    return round(cost, 6)


def render_summary(summary: dict[str, Any]) -> str:
    """The summary as plain-text tables: steps, reasons, problem types, judge usage."""
    step_rows = [
        [step, counts["in"], counts["passed"], sum(counts["dropped"].values()),
         sum(counts["failed"].values()), counts["pending"]]
        for step, counts in summary["steps"].items()
    ]
    reason_rows = [
        [step, kind, reason, count]
        for step, counts in summary["steps"].items()
        for kind in ("dropped", "failed")
        for reason, count in counts[kind].items()
    ]
    # Problem types come from the input file as written (invalid ones included).
    type_rows = [[visible_controls(name), *row.values()]
                 for name, row in summary["by_problem_type"].items()]
    usage = summary["judge_usage"]
    cost = usage["estimated_cost_usd"]
    parts = [
        f"items in {summary['items_in']}: kept {summary['kept']}, dropped {summary['dropped']}, "
        f"failed {summary['failed']}, pending {summary['pending']}",
        tabulate(step_rows, ["step", "in", "passed", "dropped", "failed", "pending"]),
        tabulate(reason_rows, ["step", "outcome", "reason", "items"]) if reason_rows else "",
        tabulate(type_rows, ["problem type", "in", *STATUSES]),
        f"judge {visible_controls(', '.join(usage['models'])) or '-'}: {usage['live']} "
        "live replies, "
        f"{usage['cached']} cached, {usage['no_verdict']} without a verdict, {usage['errors']} "
        f"errors; {usage['input_tokens']} input + "
        f"{usage['output_tokens']} output tokens; estimated cost "
        + (f"${cost:.4f}" if cost is not None else "unknown (no price for this model)"),
        f"wall time {summary.get('wall_time_s', 0):.1f} s",
    ]
    return "\n\n".join(part for part in parts if part)
