"""Reaching the Hugging Face hub: when it does not answer, say so within seconds.

The hub libraries retry an unreachable hub for minutes before failing. p2r asks the hub only
for a benchmark missing under ``--data-root`` and for a model given as a hub id; before either,
:func:`check_hub_reachable` sends one request with a short timeout and turns a failure into
an error naming the hub, what was wanted and what to do. With ``HF_HUB_OFFLINE=1`` nothing is
sent: the libraries then read only their local cache.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 5.0
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})


class HubUnreachableError(ConnectionError):
    """The hub did not answer in time (the message says what to do)."""


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` is set: the hub libraries use their local cache only."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE_VALUES


def check_hub_reachable(wanted: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Return once the hub answers (any HTTP status); raise :class:`HubUnreachableError`
    within about ``timeout_s`` when it does not. ``wanted`` says what it was asked for."""
    if hub_offline():
        return
    endpoint = hub_endpoint()
    request = urllib.request.Request(endpoint, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise HubUnreachableError(
            f"cannot reach the Hugging Face hub at {endpoint} within {timeout_s:g} s "
            f"({reason}) for {wanted}. Offline? Put the data under --data-root and set "
            "P2R_HUB=0 (p2r never asks the hub), or set HF_HUB_OFFLINE=1 (use only what the "
            "hub libraries have cached)") from None
