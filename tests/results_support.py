"""Run folders' results as the results contract (p2r_eval.eval.results) defines them."""

from __future__ import annotations

from typing import Any

from p2r_eval.eval.results import RunResults


def minimal_results(finished_at: str | None = "2026-01-01T01:00:00+00:00",
                    tasks: dict[str, Any] | None = None) -> dict[str, Any]:
    """The smallest results.json the contract accepts: no task yet unless ``tasks``."""
    return {
        "schema": 1,
        "model": {"spec": "demo", "name": "demo", "fingerprint": {}},
        "settings": {"protocol": "video-r1", "prompt_style": "p2r", "prompt_hash": "abc",
                     "frame_policy": {}, "decoding": {}, "seed": 0, "limit": None,
                     "data_root": None, "data_files": {}},
        "package": {"version": "0.1.0", "git_commit": None},
        "tasks": tasks or {},
        "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": finished_at,
    }


def minimal_run_results(finished_at: str | None = "2026-01-01T01:00:00+00:00",
                        tasks: dict[str, Any] | None = None) -> RunResults:
    """:func:`minimal_results` read as the contract's :class:`RunResults`."""
    return RunResults.model_validate(minimal_results(finished_at, tasks))
