"""What the CLI prints to a terminal: text from documents and file names made harmless.

File names and chunk text come from the user's folder, so they may hold ANSI escape sequences
(which recolour, retitle or clear a terminal), other control characters, or bidirectional
overrides that reorder what is shown. ``printable`` is the one sanitiser every CLI printer uses:
escape sequences and control characters become visible ``\\x1b``-style escapes, and with
``one_line`` newlines and tabs do too, so a file name cannot break the line it is printed on.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls, DEL, C1 controls, and the Unicode bidi embeddings/overrides/isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_LINE_BREAKS = re.compile("[\n\t\u2028\u2029\x85]")


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    if char == "\n":
        return "\\n"
    if char == "\t":
        return "\\t"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, *, one_line: bool = False) -> str:
    """``text`` safe to write to a terminal: controls shown as escapes, never interpreted."""
    cleaned = _CONTROL.sub(_escape, str(text))
    if one_line:
        cleaned = _LINE_BREAKS.sub(_escape, cleaned)
    return cleaned


def markup_safe(text: object, *, one_line: bool = False) -> str:
    """``printable`` text, also escaped for rich markup (``[bold]`` in a document stays literal)."""
    from rich.markup import escape

    return escape(printable(text, one_line=one_line))


def console(*, stderr: bool = False) -> Any:
    """A rich console for the CLI. Without a terminal (a log, a pipe) rich guesses 80 columns and
    would hard-wrap every long line there; lines are kept whole instead (tables still fit 80)."""
    from rich.console import Console

    out = Console(stderr=stderr)
    if not out.is_terminal:
        out.soft_wrap = True
    return out
