"""LLM backends behind one async protocol (see ``ragpipe.llm.base``)."""

from ragpipe.llm.base import (
    LLM,
    BaseLLM,
    Capabilities,
    ChatRequest,
    Completion,
    Message,
    TokenLogprob,
    TopLogprob,
)

__all__ = [
    "LLM",
    "BaseLLM",
    "Capabilities",
    "ChatRequest",
    "Completion",
    "Message",
    "TokenLogprob",
    "TopLogprob",
]
