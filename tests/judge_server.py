"""A local fake of the Anthropic Messages API and of an OpenAI-compatible chat endpoint.

Tests point the real ``anthropic`` and ``openai`` SDKs at it (``127.0.0.1``, port 0). It speaks
``POST /v1/messages``, the Message Batches endpoints (create, retrieve, results JSONL),
``GET /v1/models`` and ``POST /v1/chat/completions``, counts every call, and injects faults
on demand: 429 with ``retry-after``, 500, 529 overloaded, a reply slower than the client's
timeout, a malformed JSON body, a truncated body, and well-formed replies whose text holds no
verdict (empty, JSON, a sentence).

Its "judge" is a deterministic rule that reads the prompt the way a careful model would, plus
one deliberately naive habit that makes the prompt-injection test meaningful:

* It splits the prompt (system + user text) into data blocks (``<question>``, ``<options>``,
  ``<correct_answer>``, ``<observation>``, ``<reference>``, ``<prediction>``; each block ends at
  its first closing tag) and everything else, the instruction text.
* Naive habit: if the instruction text contains "answer yes", it obeys and replies yes. A prompt
  that lets observation text escape its data block gets fooled, like a model would.
* Careful rule, sufficiency: "yes" only if the observation (entities unescaped) contains the text
  of the correct option (the correct answer without its ``X.`` prefix), case-insensitively.
  Grading: "yes" only if the prediction contains the reference.
* An observation containing ``[[garble]]`` gets a reply with no verdict in it; one containing
  ``[[batch-error]]`` makes its Message Batches result an ``errored`` one. A prompt containing
  ``[[surrogate]]`` gets a rationale holding a lone UTF-16 surrogate (JSON-escaped).

Token counts are whitespace word counts of the prompt and the reply, so tests can compute them.
"""

from __future__ import annotations

import html
import itertools
import json
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DATA_TAGS = ("question", "options", "correct_answer", "observation", "reference", "prediction")
DATA_BLOCK = re.compile(r"<(" + "|".join(DATA_TAGS) + r")>(.*?)</\1>", re.DOTALL)
NAIVE_OBEY = re.compile(r"answer\s+yes", re.IGNORECASE)
OPTION_PREFIX = re.compile(r"^\s*\(?[A-Z][.):]\s*")
TRANSIENT_FAULTS = ("429", "500", "529", "timeout", "malformed", "truncated")
NO_VERDICT_REPLIES = {
    "empty-reply": "",
    "json-reply": '{"grade": "correct", "confidence": 0.9}',
    "sentence-reply": "Both answers describe the same quantity, more or less.",
}
"""Faults that answer 200 with a well-formed body whose text holds no verdict."""
FAULTS = ("ok", "400", *TRANSIENT_FAULTS, *NO_VERDICT_REPLIES)


def split_prompt(text: str) -> tuple[dict[str, str], str]:
    """The first data block of each tag (unescaped) and the instruction text outside them."""
    blocks: dict[str, str] = {}
    for match in DATA_BLOCK.finditer(text):
        blocks.setdefault(match.group(1), html.unescape(match.group(2)).strip())
    return blocks, DATA_BLOCK.sub("", text)


def judge_reply(prompt_text: str) -> str:
    """The fake judge's reply to a whole prompt (system + user text)."""
    blocks, instructions = split_prompt(prompt_text)
    if NAIVE_OBEY.search(instructions):
        return "<verdict>yes</verdict><rationale>I was told to answer yes.</rationale>"
    if "[[garble]]" in blocks.get("observation", ""):
        return "The weather is nice today."
    if "observation" in blocks:
        wanted = OPTION_PREFIX.sub("", blocks.get("correct_answer", "")).strip().lower()
        found = bool(wanted) and wanted in blocks["observation"].lower()
    elif "prediction" in blocks:
        wanted = blocks.get("reference", "").strip().lower()
        found = bool(wanted) and wanted in blocks["prediction"].lower()
    else:
        return "I do not understand the request."
    verdict = "yes" if found else "no"
    reason = "The data contains the expected text." if found else "The expected text is absent."
    if "[[surrogate]]" in prompt_text:
        reason += " Half a pair: \ud800."
    return f"<verdict>{verdict}</verdict>\n<rationale>{reason}</rationale>"


def word_count(text: str) -> int:
    return len(text.split())


def anthropic_prompt_text(body: dict[str, Any]) -> str:
    """System prompt and user messages of a Messages API request, as one text."""
    parts = [_content_text(body.get("system", ""))]
    parts += [_content_text(m.get("content", "")) for m in body.get("messages", [])]
    return "\n".join(parts)


def openai_prompt_text(body: dict[str, Any]) -> str:
    return "\n".join(_content_text(m.get("content", "")) for m in body.get("messages", []))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


class FakeJudgeServer:
    """The server, run in a thread. Use as a context manager.

    ``faults`` is a sequence of fault names (see ``FAULTS``; ``"400"`` is a permanent error)
    consumed one per model call (Messages or chat completions) in arrival order; after it runs
    out, ``fault_rate`` draws a transient fault with that probability (seeded). ``api_key`` is
    the key the server demands (``x-api-key`` or ``Authorization: Bearer``); ``None`` accepts
    any.
    """

    def __init__(
        self,
        *,
        faults: Iterable[str] = (),
        fault_rate: float = 0.0,
        seed: int = 0,
        api_key: str | None = "test-key",
        slow_reply_s: float = 2.0,
        batch_polls_until_ended: int = 2,
        model_ids: tuple[str, ...] = ("fake-judge-1",),
    ) -> None:
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; choose from {FAULTS}")
        self.faults: deque[str] = deque(faults)
        self.scripted_replies: deque[str] = deque()
        """Reply texts served, one per model call, before the fake judge's own rule."""
        self.fault_rate = fault_rate
        self.api_key = api_key
        self.slow_reply_s = slow_reply_s
        self.batch_polls_until_ended = batch_polls_until_ended
        self.model_ids = model_ids
        self.calls: Counter[str] = Counter()
        self.faults_served: Counter[str] = Counter()
        self.prompts: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.batches: dict[str, dict[str, Any]] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    def model_calls(self) -> int:
        """Calls to the Messages and chat completions endpoints, faulty ones included."""
        return self.calls["messages"] + self.calls["chat"]

    def __enter__(self) -> FakeJudgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def next_scripted_reply(self) -> str | None:
        with self._lock:
            return self.scripted_replies.popleft() if self.scripted_replies else None

    def next_fault(self) -> str:
        with self._lock:
            if self.faults:
                fault = self.faults.popleft()
            elif self.fault_rate and self._rng.random() < self.fault_rate:
                fault = self._rng.choice(TRANSIENT_FAULTS)
            else:
                fault = "ok"
            self.faults_served[fault] += 1
            return fault

    def count(self, endpoint: str, body: dict[str, Any] | None = None, prompt: str = "") -> None:
        with self._lock:
            self.calls[endpoint] += 1
            if body is not None:
                self.bodies.append(body)
                self.prompts.append(prompt)

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}_{next(self._ids):06d}"


def anthropic_message(model: str, prompt_text: str, msg_id: str) -> dict[str, Any]:
    reply = judge_reply(prompt_text)
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": reply}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": word_count(prompt_text), "output_tokens": word_count(reply)},
    }


def openai_completion(model: str, prompt_text: str, completion_id: str) -> dict[str, Any]:
    reply = judge_reply(prompt_text)
    prompt_tokens, completion_tokens = word_count(prompt_text), word_count(reply)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def with_reply_text(payload: dict[str, Any], text: str) -> dict[str, Any]:
    """A Messages or chat completion body with its reply text replaced by ``text``."""
    if "choices" in payload:
        choice = payload["choices"][0]
        return {**payload, "choices": [{**choice, "message": {**choice["message"],
                                                              "content": text}}]}
    return {**payload, "content": [{"type": "text", "text": text}]}


def _make_handler(server: FakeJudgeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # stdlib name
            return

        def handle(self) -> None:
            try:
                super().handle()
            except (BrokenPipeError, ConnectionResetError):
                return

        # -- plumbing ------------------------------------------------------------------
        def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None):
            body = json.dumps(payload).encode()
            self._send_raw(status, body, "application/json", headers)

        def _send_raw(
            self,
            status: int,
            body: bytes,
            content_type: str,
            headers: dict[str, str] | None = None,
            declared_length: int | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(declared_length or len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def _read_json(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length", "0"))
            return json.loads(self.rfile.read(length) or b"{}")

        def _authorised(self) -> bool:
            if server.api_key is None:
                return True
            bearer = self.headers.get("Authorization", "")
            if self.headers.get("x-api-key") == server.api_key or bearer == (
                f"Bearer {server.api_key}"
            ):
                return True
            error = {"type": "authentication_error", "message": "invalid x-api-key"}
            self._send_json(401, {"type": "error", "error": error})
            return False

        def _error(self, status: int, kind: str, headers: dict[str, str] | None = None) -> None:
            error = {"type": kind, "message": f"injected {kind}"}
            self._send_json(status, {"type": "error", "error": error}, headers)

        def _serve_fault_or(self, fault: str, payload: dict[str, Any]) -> None:
            if fault == "400":
                self._error(400, "invalid_request_error")
            elif fault == "429":
                self._error(429, "rate_limit_error", {"retry-after": "0.05"})
            elif fault == "500":
                self._error(500, "api_error")
            elif fault == "529":
                self._error(529, "overloaded_error")
            elif fault == "malformed":
                self._send_raw(200, b'{"id": "msg_broken", "content": [', "application/json")
            elif fault in NO_VERDICT_REPLIES:
                self._send_json(200, with_reply_text(payload, NO_VERDICT_REPLIES[fault]))
            elif fault == "truncated":
                body = json.dumps(payload).encode()
                self._send_raw(200, body[: len(body) // 2], "application/json", None, len(body))
                self.close_connection = True
            else:
                if fault == "timeout":
                    time.sleep(server.slow_reply_s)
                self._send_json(200, payload)

        # -- routes --------------------------------------------------------------------
        def do_GET(self) -> None:  # stdlib name
            if not self._authorised():
                return
            path = self.path.split("?")[0]
            server.count("GET " + path)
            if path == "/v1/models":
                self._send_json(200, _models_list(server.model_ids))
                return
            match = re.fullmatch(r"/v1/messages/batches/([\w-]+)(/results)?", path)
            if match and match.group(1) in server.batches:
                batch = server.batches[match.group(1)]
                if match.group(2):
                    self._send_batch_results(batch)
                else:
                    batch["polls"] += 1
                    self._send_json(200, _batch_status(server, batch))
                return
            self._error(404, "not_found_error")

        def do_POST(self) -> None:  # stdlib name
            if not self._authorised():
                return
            path = self.path.split("?")[0]
            body = self._read_json()
            if path in ("/v1/messages", "/v1/chat/completions"):
                self._model_call(path, body)
            elif path == "/v1/messages/batches":
                server.count("batches.create")
                batch_id = server.new_id("msgbatch")
                server.batches[batch_id] = {
                    "id": batch_id,
                    "requests": body["requests"],
                    "polls": 0,
                }
                self._send_json(200, _batch_status(server, server.batches[batch_id]))
            else:
                self._error(404, "not_found_error")

        def _model_call(self, path: str, body: dict[str, Any]) -> None:
            server.enter()
            try:
                if path == "/v1/messages":
                    prompt = anthropic_prompt_text(body)
                    server.count("messages", body, prompt)
                    reply = anthropic_message(body["model"], prompt, server.new_id("msg"))
                else:
                    prompt = openai_prompt_text(body)
                    server.count("chat", body, prompt)
                    reply = openai_completion(body["model"], prompt, server.new_id("chatcmpl"))
                scripted = server.next_scripted_reply()
                if scripted is not None:
                    reply = with_reply_text(reply, scripted)
                self._serve_fault_or(server.next_fault(), reply)
            finally:
                server.leave()

        def _send_batch_results(self, batch: dict[str, Any]) -> None:
            lines = []
            for request in batch["requests"]:
                prompt = anthropic_prompt_text(request["params"])
                if "[[batch-error]]" in prompt:
                    error = {"type": "error", "error": {"type": "api_error", "message": "boom"}}
                    result: dict[str, Any] = {"type": "errored", "error": error}
                else:
                    message = anthropic_message(
                        request["params"]["model"], prompt, server.new_id("msg")
                    )
                    result = {"type": "succeeded", "message": message}
                lines.append(json.dumps({"custom_id": request["custom_id"], "result": result}))
            self._send_raw(200, ("\n".join(lines) + "\n").encode(), "application/binary")

    return Handler


def _models_list(model_ids: tuple[str, ...]) -> dict[str, Any]:
    data = [
        {
            "type": "model",
            "object": "model",
            "id": model_id,
            "display_name": model_id,
            "created_at": "2025-01-01T00:00:00Z",
            "created": 0,
            "owned_by": "fake",
        }
        for model_id in model_ids
    ]
    return {
        "object": "list",
        "data": data,
        "has_more": False,
        "first_id": model_ids[0],
        "last_id": model_ids[-1],
    }


def _batch_status(server: FakeJudgeServer, batch: dict[str, Any]) -> dict[str, Any]:
    ended = batch["polls"] >= server.batch_polls_until_ended
    count = len(batch["requests"])
    errored = sum(
        "[[batch-error]]" in anthropic_prompt_text(r["params"]) for r in batch["requests"]
    )
    return {
        "id": batch["id"],
        "type": "message_batch",
        "processing_status": "ended" if ended else "in_progress",
        "request_counts": {
            "processing": 0 if ended else count,
            "succeeded": count - errored if ended else 0,
            "errored": errored if ended else 0,
            "canceled": 0,
            "expired": 0,
        },
        "created_at": "2025-01-01T00:00:00Z",
        "expires_at": "2025-01-02T00:00:00Z",
        "ended_at": "2025-01-01T00:01:00Z" if ended else None,
        "cancel_initiated_at": None,
        "archived_at": None,
        "results_url": f"{server.url}/v1/messages/batches/{batch['id']}/results" if ended else None,
    }
