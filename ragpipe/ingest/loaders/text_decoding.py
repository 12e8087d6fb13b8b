"""Bytes to clean text: byte-order marks, UTF-8, then charset detection; control characters removed.

Decoding order: a BOM decides (UTF-32 before UTF-16, whose BOM is its prefix); else strict UTF-8;
else Windows-1252 when the bytes read as Latin-script text in it; else charset-normalizer's guess. NUL bytes without a BOM, or a decoded text that is mostly
control characters, mean binary content: refused, never indexed as garbage.

Cleaning keeps ``\\n`` and ``\\t``, turns ``\\r\\n``, ``\\r``, form feeds and vertical tabs into
``\\n``, and drops every other C0/C1 control character, whole ANSI escape sequences (which would
reach a terminal) and the bidirectional overrides that can hide text from a reader.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_SNIFF_BYTES = 8192
_MAX_CONTROL_SHARE = 0.03  # more control characters than this (in a sample) is binary, not text

_ESCAPE_SEQUENCE = r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])?"
_CONTROL_CHARS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_UNWANTED = re.compile(f"{_ESCAPE_SEQUENCE}|[{_CONTROL_CHARS}]")
_LINE_BREAKS = {"\x0b": "\n", "\x0c": "\n"}
# Languages charset-normalizer recognises whose script is not Latin: its code page is then trusted.
_NON_LATIN_LANGUAGES = {
    "Russian", "Ukrainian", "Bulgarian", "Macedonian", "Serbian", "Kazakh", "Greek", "Hebrew", "Arabic",
    "Farsi", "Thai", "Hindi", "Japanese", "Chinese", "Korean", "Vietnamese",
}
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str
    refusal: str | None = None  # why this is not text, when it is not


def decode_bytes(data: bytes) -> Decoded:
    """Decode a text file's bytes, saying which encoding was used (or why it is not text)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _checked(data[len(bom) :].decode(encoding), encoding)
            except UnicodeDecodeError as err:
                return Decoded("", encoding, f"starts with a {encoding} byte-order mark but is not {encoding} (byte {err.start})")
    if b"\x00" in data[:_SNIFF_BYTES]:
        return Decoded("", "", "binary content (NUL bytes) in a text file")
    try:
        return _checked(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        return Decoded("", "", "binary content (no text encoding fits)")
    western = _as_western(data) if best.language not in _NON_LATIN_LANGUAGES else None
    if western is not None:
        return _checked(western, "cp1252")
    try:
        return _checked(data.decode(best.encoding), best.encoding)
    except (UnicodeDecodeError, LookupError):
        return Decoded("", best.encoding, f"not decodable as {best.encoding}, the detected encoding")


def _as_western(data: bytes) -> str | None:
    """The text as Windows-1252 when that reads as Latin-script text, else None.

    Single-byte Latin encodings are nearly indistinguishable by statistics (charset-normalizer
    picks Baltic or Central European code pages for French and German text, turning "è" into
    "č"); Windows-1252, a superset of Latin-1, is by far the most common of them, and the
    fallback browsers use for the same reason.
    """
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    for char in {c for c in text if ord(c) > 127}:
        category = unicodedata.category(char)
        if category.startswith("L") and "LATIN" not in unicodedata.name(char, ""):
            return None
        if not (category.startswith(("L", "P", "Z", "S", "N"))):
            return None
    return text


def _checked(text: str, encoding: str) -> Decoded:
    sample = text[:65536]
    if sample and len(_CONTROL.findall(sample)) > _MAX_CONTROL_SHARE * len(sample):
        return Decoded("", encoding, f"binary content (control characters) in a text file decoded as {encoding}")
    return Decoded(text, encoding)


def clean_text(text: str) -> str:
    """``text`` without control characters, escape sequences or bidi overrides (``\\n``/``\\t`` kept)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _UNWANTED.search(text) is None:
        return text
    return _UNWANTED.sub(lambda m: _LINE_BREAKS.get(m.group(), ""), text)
