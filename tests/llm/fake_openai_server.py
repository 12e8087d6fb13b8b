"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for backend tests.

Each request pops the next behaviour from a script: ``ok``, ``429``, ``500``, ``hang``,
``garbage``, ``nousage``, ``nochoices``, ``401``, ``404``, ``400ctx``, ``logprobs``, and for fault
tests ``echoauth`` / ``echoauth500`` (an error body that repeats the request's Authorization
header), ``hangforever`` (no answer until the server stops), ``truncated`` (a cut-off JSON body),
``wrongshape`` (JSON that is not a chat completion), ``nullchoice`` (``choices: [null]``), and
``text:<reply>`` (a completion whose content is ``<reply>``). When the script is empty,
``default`` is used. Every request body and its headers are recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG_S = 3.0


def completion_body(text: str = "ok", logprobs: bool = False, finish: str = "stop") -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
    if logprobs:
        choice["logprobs"] = {
            "content": [
                {"token": "A", "logprob": -0.1, "bytes": None,
                 "top_logprobs": [{"token": "A", "logprob": -0.1, "bytes": None},
                                  {"token": "B", "logprob": -2.5, "bytes": None}]}
            ]
        }
    return {
        "id": "cmpl-1", "object": "chat.completion", "created": 0, "model": "served-model",
        "choices": [choice], "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
    }


class FakeOpenAIServer:
    def __init__(self, script: list[str] | None = None, default: str = "ok") -> None:
        self.script: deque[str] = deque(script or [])
        self.default = default
        self.stopping = threading.Event()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                server.paths.append(self.path)
                self._send(200, json.dumps({"object": "list", "data": [{"id": "served-model", "object": "model"}]}).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(body)
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                server.paths.append(self.path)
                action = server.script.popleft() if server.script else server.default
                fast_retry = {"retry-after-ms": "10"}
                if action == "ok":
                    self._send(200, json.dumps(completion_body()).encode())
                elif action == "logprobs":
                    self._send(200, json.dumps(completion_body("A", logprobs=True, finish="length")).encode())
                elif action == "429":
                    self._send(429, json.dumps({"error": {"message": "slow down"}}).encode(), fast_retry)
                elif action == "500":
                    self._send(500, json.dumps({"error": {"message": "boom"}}).encode(), fast_retry)
                elif action == "401":
                    self._send(401, json.dumps({"error": {"message": "bad key"}}).encode())
                elif action == "404":
                    self._send(404, json.dumps({"error": {"message": "model not found"}}).encode())
                elif action == "400ctx":
                    message = "This model's maximum context length is 8192 tokens"
                    self._send(400, json.dumps({"error": {"message": message}}).encode())
                elif action == "nousage":
                    body = completion_body("a short answer")
                    del body["usage"]
                    self._send(200, json.dumps(body).encode())
                elif action == "nochoices":
                    self._send(200, json.dumps({**completion_body(), "choices": []}).encode())
                elif action == "garbage":
                    self._send(200, b"<html>definitely not json")
                elif action in ("echoauth", "echoauth500"):
                    echoed = {"error": {"message": f"invalid request; you sent Authorization: "
                                                   f"{self.headers.get('Authorization')}",
                                        "headers": dict(self.headers.items())}}
                    self._send(400 if action == "echoauth" else 500, json.dumps(echoed).encode(), fast_retry)
                elif action == "hangforever":
                    server.stopping.wait()
                elif action == "truncated":
                    self._send(200, json.dumps(completion_body())[:40].encode())
                elif action == "wrongshape":
                    self._send(200, json.dumps({"result": "fine", "items": [1, 2]}).encode())
                elif action == "nullchoice":
                    self._send(200, json.dumps({**completion_body(), "choices": [None]}).encode())
                elif action.startswith("text:"):
                    self._send(200, json.dumps(completion_body(action[len("text:"):])).encode())
                elif action == "hang":
                    time.sleep(HANG_S)
                    self._send(200, json.dumps(completion_body()).encode())

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
