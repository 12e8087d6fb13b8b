"""Keep document and question text from turning into a model's control tokens.

A chat server applies the chat template and tokenises the result with special tokens enabled,
so a document that contains ``<|im_start|>system`` would open a real system turn. Text that is
data (documents, questions) therefore never reaches a tokenizer with its special-token strings
intact: the common families (ChatML, Llama 2/3, Mistral, Gemma, Phi, DeepSeek, BOS/EOS shapes)
and, where a backend knows them, the loaded model's own special tokens are rewritten with
HTML-style entities for their angle or square brackets. The rewrite is idempotent, keeps the
text readable, and leaves ordinary text untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# ``<|...|>`` (ChatML, Llama 3, Phi, Command-R, Granite, harmony) and DeepSeek's full-width ``<｜...｜>``.
_PIPE_TOKEN = r"<[|｜][^<>\s]{0,64}?[|｜]>"
# Bare angle-bracket tokens: BOS/EOS/UNK/PAD shapes, Gemma turns, Llama 2 system markers, reasoning tags.
_ANGLE_WORDS = (
    "s", "/s", "unk", "pad", "mask", "bos", "eos", "sep", "cls", "eot",
    "start_of_turn", "end_of_turn", "start_of_image", "end_of_image",
    "think", "/think", "tool_call", "/tool_call", "tool_response", "/tool_response",
)
_ANGLE_TOKEN = r"<(?:" + "|".join(re.escape(w) for w in _ANGLE_WORDS) + r")>"
_SYS_MARKER = r"<</?SYS>>"
# Mistral's square-bracket control tokens.
_SQUARE_WORDS = (
    "INST", "/INST", "SYSTEM_PROMPT", "/SYSTEM_PROMPT", "TOOL_CALLS", "AVAILABLE_TOOLS",
    "/AVAILABLE_TOOLS", "TOOL_RESULTS", "/TOOL_RESULTS", "TOOL_CONTENT", "IMG", "IMG_BREAK", "IMG_END",
)
_SQUARE_TOKEN = r"\[(?:" + "|".join(re.escape(w) for w in _SQUARE_WORDS) + r")\]"

SPECIAL_TOKEN_PATTERN = re.compile("|".join((_PIPE_TOKEN, _SYS_MARKER, _ANGLE_TOKEN, _SQUARE_TOKEN)), re.IGNORECASE)

_ENTITIES = {"<": "&lt;", ">": "&gt;", "[": "&#91;", "]": "&#93;"}


def _defuse(token: str) -> str:
    """Entity-escape the first and last bracket: the tokenizer no longer sees the token string."""
    first, last = token[0], token[-1]
    return _ENTITIES.get(first, first) + token[1:-1] + _ENTITIES.get(last, last)


def neutralise_special_tokens(text: str, extra_tokens: Iterable[str] = ()) -> str:
    """``text`` with every special-token string (common families plus ``extra_tokens``) defused."""
    text = SPECIAL_TOKEN_PATTERN.sub(lambda m: _defuse(m.group(0)), text)
    for token in sorted({t for t in extra_tokens if len(t) > 1}, key=len, reverse=True):
        if token in text:
            text = text.replace(token, _defuse(token) if token[0] in _ENTITIES else token[0] + "\u2060" + token[1:])
    return text


def has_special_tokens(text: str) -> bool:
    """True when ``text`` holds a string a chat template would read as a control token."""
    return SPECIAL_TOKEN_PATTERN.search(text) is not None
