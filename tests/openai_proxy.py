"""A counting, fault-injecting HTTP proxy in front of a real ``p2r-eval serve``.

Tests put it between the openai backend and the server (both on 127.0.0.1): it forwards every
request unchanged and counts the chat-completions calls that reached the server; with
``fault_rate`` > 0 it answers that share of chat calls itself, chosen at random (seeded),
alternately with a 429 (``retry-after-ms: 1``) and a 500, without forwarding them.
"""

from __future__ import annotations

import random
import threading
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHAT_PATH = "/v1/chat/completions"


class FaultyProxy:
    def __init__(self, upstream: str, fault_rate: float = 0.0, seed: int = 0) -> None:
        self.upstream = upstream.rstrip("/").removesuffix("/v1")  # paths keep their /v1
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fault(self) -> int | None:
        with self.lock:
            if self.rng.random() >= self.fault_rate:
                return None
            status = (429, 500)[(self.counts["429"] + self.counts["500"]) % 2]
            self.counts[str(status)] += 1
            return status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.forward(None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path == CHAT_PATH:
                    status = proxy.fault()
                    if status is not None:
                        self.reply(status, b'{"error": {"message": "injected fault"}}',
                                   {"retry-after-ms": "1"})
                        return
                    with proxy.lock:
                        proxy.counts["forwarded"] += 1
                self.forward(body)

            def forward(self, body: bytes | None) -> None:
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body, method=self.command,
                    headers={"content-type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=300) as response:
                        self.reply(response.status, response.read(), {})
                except urllib.error.HTTPError as error:
                    self.reply(error.code, error.read(), {})
                except OSError:
                    self.reply(502, b'{"error": {"message": "upstream unreachable"}}', {})

            def reply(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler
