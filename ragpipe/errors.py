"""Exception hierarchy: every failure a user can act on has its own class and a one-line message."""

from __future__ import annotations

from typing import Any


class RagpipeError(Exception):
    """Base of all ragpipe errors. The CLI prints ``str(err)`` as one line and exits non-zero."""

    exit_code: int = 1


class ConfigError(RagpipeError):
    """A setting, connector profile or config file is wrong; the message names it."""

    exit_code = 2


class PromptError(RagpipeError):
    """A prompt file is missing, malformed, or was rendered without a declared variable."""

    exit_code = 2


class MissingExtraError(RagpipeError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    exit_code = 2

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package: pip install 'ragpipe[{extra}]'"
        )
        self.package, self.extra = package, extra


class LLMError(RagpipeError):
    """An LLM call failed after the retries it was allowed."""

    exit_code = 3

    def __init__(self, message: str, *, raw: str | None = None, attempts: int = 1, **info: Any) -> None:
        super().__init__(message)
        self.raw = raw
        self.attempts = attempts
        self.info = info


class LLMUnavailable(LLMError):
    """The server cannot be reached or the embedded model cannot be loaded."""


class LLMAuthError(LLMError):
    """The API key is missing or was rejected."""


class LLMModelNotFound(LLMError):
    """The server does not serve the requested model."""


class LLMRateLimited(LLMError):
    """The server kept answering 429 after all retries."""


class LLMTimeout(LLMError):
    """The call did not finish within its timeout."""


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


class StoreLocked(StoreError):
    """Another process is writing this index."""


class IngestError(RagpipeError):
    """One source file could not be loaded; the run skips it and lists it in its summary."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason
