"""Start llama.cpp's OpenAI-compatible server (llama-cpp-python's) on 127.0.0.1 and stop it again.

For tests, benchmarks and trying the OpenAI-compatible path on a laptop:

    with LlamaCppServer() as server:
        llm = OpenAICompatLLM(base_url=server.base_url, model=server.model_alias, json_mode="json_object")
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from ragpipe.errors import LLMUnavailable
from ragpipe.models import packaged_smollm2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaCppServer:
    """A ``python -m llama_cpp.server`` subprocess serving one GGUF model on loopback."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model_alias: str = "smollm2-135m-instruct",
        port: int | None = None,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        logits_all: bool = True,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.model_path = Path(model_path) if model_path else packaged_smollm2()
        self.model_alias = model_alias
        self.port = port or free_port()
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.logits_all = logits_all  # the server needs it for logprobs; without it prefill is cheaper
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaCppServer:
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path), "--model_alias", self.model_alias,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
        ]
        if self.n_threads:
            cmd += ["--n_threads", str(self.n_threads)]
        self._process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ})
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise LLMUnavailable(f"llama.cpp server exited with code {self._process.returncode}: {self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.25)
        self.stop()
        raise LLMUnavailable(f"llama.cpp server did not start within {self.startup_timeout_s:g} s: {self._tail()}")

    def _tail(self, limit: int = 800) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", errors="replace")[-limit:].strip()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
        self._log.close()
