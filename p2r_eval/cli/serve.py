"""``p2r-eval serve``: the command line of the OpenAI-compatible server
(:mod:`p2r_eval.models.server`)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import Any

from p2r_eval.models.base import DecodingSettings
from p2r_eval.models.server import SERVE_INSTALL_HINT, build_app


def add_subcommands(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a checkpoint behind an OpenAI-compatible chat-completions endpoint",
        description="Serve any checkpoint the hf backend loads behind OpenAI's chat-completions "
                    "protocol (the subset p2r-eval --backend openai sends, video as vLLM's "
                    "frame list). Concurrent requests are batched. Needs the serve extra "
                    f"({SERVE_INSTALL_HINT}).",
        epilog="example: p2r-eval serve --model demo --port 8000, then p2r-eval --backend openai "
               "--model demo --base-url http://127.0.0.1:8000/v1 --tasks all",
    )
    parser.add_argument("--model", required=True,
                        help="'demo', a local checkpoint folder or a hub id")
    parser.add_argument("--served-model-name", default=None,
                        help="the name clients ask for (default: --model as given)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if any)")
    parser.add_argument("--max-new-tokens", type=int, default=1024,
                        help="tokens generated when a request sets no limit (default 1024)")
    parser.add_argument("--max-batch-size", type=int, default=8,
                        help="requests run together in one generate call at most (default 8)")
    parser.set_defaults(func=serve_command)


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def serve_command(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        print(f"p2r-eval serve: needs FastAPI and uvicorn: {SERVE_INSTALL_HINT}")
        return 2
    from p2r_eval.models import BackendError, resolve_model
    from p2r_eval.models.hf import HFBackend

    try:
        backend = HFBackend(resolve_model(args.model), device=args.device,
                            decoding=DecodingSettings(max_new_tokens=args.max_new_tokens))
    except BackendError as error:
        print(f"p2r-eval serve: {error}")
        return 2
    name = args.served_model_name or args.model
    app = build_app(backend, name, max_batch_size=args.max_batch_size)
    sock = listening_socket(args.host, args.port)
    host, port = sock.getsockname()[:2]
    print(f"serving {name} ({Path(backend.model_path).name}) on http://{host}:{port}/v1",
          flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0
