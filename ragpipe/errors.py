"""Exception hierarchy: every failure a user can act on has its own class and a one-line message."""

from __future__ import annotations

import re
import threading
from typing import Any, ClassVar

REDACTED = "[redacted]"
# Credential shapes that must never be shown: bearer/basic credentials, OpenAI-style keys, and the
# value of a key-like field (``api_key=…``, ``"authorization": "…"``).
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_KEY_SHAPE = re.compile(r"\bsk-[A-Za-z0-9_-]{8,}")
_KEY_FIELD = re.compile(
    r"(?i)\b(api[_-]?key|x-api-key|authorization|access[_-]?token|password|secret)(\\?[\"']?\s*[:=]\s*\\?[\"']?)"
    r"(?!\[redacted\]|bearer\s|basic\s)[^\s\"'\\,;}]{4,}"
)
_known_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a credential (an API key read from the environment) so ``redact`` removes it."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _known_secrets.add(value)
        install_log_redaction()


def redact(text: str) -> str:
    """``text`` without any registered credential or credential-shaped string.

    The one redaction used for error messages, log records and traces.
    """
    with _secrets_lock:
        known = sorted(_known_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _KEY_SHAPE.sub(REDACTED, text)
    return _KEY_FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def redact_data(value: Any) -> Any:
    """``redact`` applied to every string inside nested lists and dicts (trace event data)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    return value


def install_log_redaction() -> None:
    """Redact every log record created from now on, whichever library logs it (idempotent)."""
    import logging

    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacting", False):
        return

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem to report, not ours
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return record

    redacting_factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting_factory)


class RagpipeError(Exception):
    """Base of all ragpipe errors. The CLI prints ``str(err)`` as one line and exits non-zero.

    Messages are redacted when raised and again when shown, so a credential that a server echoed
    back (or one registered later) never reaches a terminal, a log or a trace.
    """

    exit_code: int = 1

    def __init__(self, *args: Any) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))

    def __str__(self) -> str:
        return redact(super().__str__())

    def __repr__(self) -> str:
        return redact(super().__repr__())


class ConfigError(RagpipeError):
    """A setting, connector profile or config file is wrong; the message names it."""

    exit_code = 2


class PromptError(RagpipeError):
    """A prompt file is missing, malformed, or was rendered without a declared variable."""

    exit_code = 2


class MissingExtraError(RagpipeError, ImportError):
    """A dependency is not installed; the message names the extra (or package) to install.

    ``extra=None`` marks a core dependency: the install is broken, so the fix is the package itself.
    """

    exit_code = 2

    def __init__(self, package: str, extra: str | None, purpose: str) -> None:
        fix = f"pip install 'ragpipe[{extra}]'" if extra else f"pip install '{package}' (a core dependency of ragpipe)"
        super().__init__(f"{purpose} needs the '{package}' package: {fix}")
        self.package, self.extra = package, extra


class LLMError(RagpipeError):
    """An LLM call failed after the retries it was allowed."""

    exit_code = 3
    # The next call of the same node would meet this failure again, so calling on is waste.
    recurs: ClassVar[bool] = False

    def __init__(self, message: str, *, raw: str | None = None, attempts: int = 1, **info: Any) -> None:
        super().__init__(message)
        self.raw = raw
        self.attempts = attempts
        self.info = info


class LLMUnavailable(LLMError):
    """The server cannot be reached or the embedded model cannot be loaded."""

    recurs = True


class LLMAuthError(LLMError):
    """The API key is missing or was rejected."""

    recurs = True


class LLMModelNotFound(LLMError):
    """The server does not serve the requested model."""

    recurs = True


class LLMRateLimited(LLMError):
    """The server kept answering 429 after all retries."""

    recurs = True


class LLMTimeout(LLMError):
    """The call did not finish within its timeout."""

    recurs = True


class ContextOverflow(LLMError):
    """The prompt does not fit the model's context window."""


class Truncated(LLMError):
    """The model stopped at max_tokens; ``raw`` holds the partial text. Never parsed silently."""


class OutputParseError(LLMError):
    """The model's output could not be parsed even after repair."""


class StoreError(RagpipeError):
    """The vector store could not be opened, read or written."""

    exit_code = 4


class EmbeddingMismatch(StoreError):
    """The index was built with another embedding model than the one configured."""


class Interrupted(RagpipeError):
    """The user stopped the run (Ctrl-C); the message says what was kept."""

    exit_code = 130


class StoreLocked(StoreError):
    """Another process is writing this index."""


class IngestError(RagpipeError):
    """One source file could not be loaded; the run skips it and lists it in its summary."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason
