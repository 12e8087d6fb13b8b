"""HTML: the page's own visible text; one segment per h1-h6 section.

What a reader does not see is not indexed: scripts, styles, ``<template>``/``<noscript>``, and
elements hidden with the ``hidden`` attribute, ``aria-hidden="true"``, or an inline
``display:none`` / ``visibility:hidden`` (a classic place to plant instructions for an LLM).

Generated documentation repeats navigation on every page, which then outranks the page itself in
retrieval. A fixed rule set removes it rather than a main-content extractor: extractors such as
trafilatura pull in date parsing, language and URL libraries, and return flat text without the
heading structure the segments need. The rules: when the page marks its main content (``<main>``
or ``role="main"``) only that is read; landmarks that are never content (``nav``, ``footer``, a
top-level ``header``, roles navigation/banner/contentinfo/search) and the chrome classes of the
common generators (Sphinx, MkDocs, Docusaurus, Javadoc) are dropped, as are heading permalinks.
Hiding by a stylesheet class is not seen (that would need a CSS engine).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragpipe.ingest.loaders.base import LoadedDocument, SegmentBuilder, read_text, register_loader

_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_BLOCKS = ("p", "li", "pre", "blockquote", "td", "th", "dd", "dt", "figcaption", "caption", *_HEADINGS)
_INLINE = {"a", "abbr", "b", "bdi", "cite", "code", "del", "em", "i", "ins", "kbd", "mark", "q", "s", "samp",
           "small", "span", "strong", "sub", "sup", "time", "u", "var", "label", "wbr"}
_NEVER_TEXT = ("script", "style", "noscript", "template", "head", "nav", "footer", "form", "button", "svg", "iframe")
_CHROME_ROLES = {"navigation", "banner", "contentinfo", "search"}
_CHROME_CLASSES = {
    # Sphinx (basic, alabaster, classic, Read the Docs, Furo, PyData)
    "sphinxsidebar", "sphinxsidebarwrapper", "related", "headerlink", "footer", "rst-footer-buttons",
    "wy-nav-side", "wy-breadcrumbs", "sidebar-drawer", "toc-drawer", "mobile-header", "bd-header",
    "bd-sidebar", "bd-sidebar-primary", "bd-sidebar-secondary", "prev-next-area", "related-pages",
    # MkDocs and Material for MkDocs
    "md-header", "md-sidebar", "md-footer", "md-nav", "md-search", "md-skip", "md-tabs", "md-source",
    "md-top", "md-content__button",
    # Docusaurus
    "navbar", "theme-doc-sidebar-container", "pagination-nav", "theme-doc-toc-desktop",
    "theme-doc-toc-mobile", "theme-doc-breadcrumbs", "theme-edit-this-page", "theme-last-updated",
    "theme-doc-footer", "hash-link", "table-of-contents",
    # Javadoc (old and new)
    "topNav", "subNav", "bottomNav", "top-nav", "sub-nav", "bottom-nav", "skipNav", "skip-nav", "navList",
    "legal-copy",
}
_HIDDEN_STYLE = re.compile(r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*(?:hidden|collapse))\b", re.I)
_PERMALINK_GLYPHS = " ¶\u200b"


def _is_hidden(tag: Any) -> bool:
    attrs = tag.attrs or {}
    if "hidden" in attrs or str(attrs.get("aria-hidden", "")).lower() == "true":
        return True
    if tag.name == "input" and str(attrs.get("type", "")).lower() == "hidden":
        return True
    return bool(_HIDDEN_STYLE.search(str(attrs.get("style", ""))))


def _is_chrome(tag: Any) -> bool:
    attrs = tag.attrs or {}
    if str(attrs.get("role", "")).lower() in _CHROME_ROLES:
        return True
    if tag.name == "header" and tag.find_parent(("main", "article")) is None:
        return True
    classes = attrs.get("class") or []
    return any(name in _CHROME_CLASSES for name in classes)


def _content_root(soup: Any) -> Any:
    """The page's marked main content when it has some text, else the body (or the whole page)."""
    for candidate in soup.find_all(lambda t: t.name == "main" or str(t.get("role", "")).lower() == "main"):
        if candidate.get_text(strip=True):
            return candidate
    return soup.body or soup


def _strip_invisible(root: Any) -> None:
    for tag in root.find_all(_NEVER_TEXT):
        tag.decompose()
    for tag in root.find_all(True):
        if not tag.decomposed and (_is_hidden(tag) or _is_chrome(tag)):
            tag.decompose()


def _blocks(root: Any) -> Iterator[tuple[str, str]]:
    """(tag name, text) of each top-level block in document order; text outside blocks (a bare
    ``<div>``'s) comes as name ``""``, split where a non-inline element starts or ends."""
    from bs4 import NavigableString, Tag

    loose: list[str] = []

    def flush() -> Iterator[tuple[str, str]]:
        text = " ".join(" ".join(loose).split())
        loose.clear()
        if text:
            yield "", text

    def walk(node: Any) -> Iterator[tuple[str, str]]:
        for child in node.children:
            if isinstance(child, Tag):
                if child.name in _BLOCKS:
                    yield from flush()
                    yield child.name, child.get_text(" ", strip=True)
                elif child.name in _INLINE:
                    yield from walk(child)
                else:
                    yield from flush()
                    yield from walk(child)
                    yield from flush()
            elif type(child) is NavigableString:  # not comments, doctypes, CDATA
                loose.append(str(child))

    yield from walk(root)
    yield from flush()


@register_loader(".html", ".htm", ".xhtml")
def load_html(path: Path) -> LoadedDocument:
    from bs4 import BeautifulSoup

    file = read_text(path)
    soup = BeautifulSoup(file.text, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    root = _content_root(soup)
    _strip_invisible(root)
    builder = SegmentBuilder()
    path_: list[tuple[int, str]] = []
    section: list[str] = []
    for name, text in _blocks(root):
        if name in _HEADINGS:
            text = text.rstrip(_PERMALINK_GLYPHS)
        if name in _HEADINGS and text:
            builder.add("\n".join(section), [h for _, h in path_])
            section = []
            level = int(name[1])
            path_ = [(lvl, h) for lvl, h in path_ if lvl < level] + [(level, text)]
            title = title or (text if level == 1 else None)
        if text:
            section.append(text)
    builder.add("\n".join(section), [h for _, h in path_])
    return builder.build(title, encoding=file.encoding)
