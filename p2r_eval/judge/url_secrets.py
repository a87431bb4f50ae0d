"""Secrets a judge endpoint URL may carry, and the URL without them.

``http://user:KEY@host/v1`` (basic auth) and ``https://host/v1?key=KEY`` put a credential in
``--judge-base-url``. The SDK needs the URL as given; everything p2r records or shows (results,
errors) gets :func:`public_url`, judge errors are redacted of :func:`url_secrets`, and so is
every log line (the SDKs' debug logs print request URLs) once :func:`redact_logs` is called.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "[redacted]"


def url_secrets(url: str | None) -> list[str]:
    """The password of the URL's user part and the values of its query parameters."""
    if not url:
        return []
    parts = urlsplit(str(url))
    values = [value for _, value in parse_qsl(parts.query, keep_blank_values=False)]
    return [secret for secret in (parts.password, *values) if secret]


def public_url(url: str) -> str:
    """``url`` with its password and query parameter values replaced by ``[redacted]``."""
    parts = urlsplit(str(url))
    netloc = parts.netloc
    if parts.password:
        user_part, host_part = netloc.rsplit("@", 1)
        netloc = f"{user_part.split(':', 1)[0]}:{REDACTED}@{host_part}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(name, REDACTED if value else value) for name, value in pairs],
                          safe="[]")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class RedactingFilter(logging.Filter):
    """Replaces each secret in a log record's message with ``[redacted]``."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, REDACTED)
            record.msg, record.args = message, None
        return True


def redact_logs(secrets: Sequence[str]) -> None:
    """Redact ``secrets`` from every record the root logger's handlers write (the SDKs log
    through them)."""
    if not any(secrets):
        return
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter(secrets))
