"""HTML: visible text only (scripts, styles, navigation dropped); one segment per h1-h6 section."""

from __future__ import annotations

from pathlib import Path

from ragpipe.ingest.loaders.base import LoadedDocument, SegmentBuilder, read_text, register_loader

_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_BLOCKS = ("p", "li", "pre", "blockquote", "td", "th", "dd", "dt", "figcaption", "caption", *_HEADINGS)
_INVISIBLE = ("script", "style", "noscript", "template", "head", "nav", "footer")


@register_loader(".html", ".htm", ".xhtml")
def load_html(path: Path) -> LoadedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(read_text(path), "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup(_INVISIBLE):
        tag.decompose()
    builder = SegmentBuilder()
    path_: list[tuple[int, str]] = []
    section: list[str] = []
    blocks = [tag for tag in soup.find_all(_BLOCKS) if not tag.find_parent(_BLOCKS)]
    if not blocks:  # no block markup: the body's visible text as one piece
        section.append(soup.get_text("\n", strip=True))
    for tag in blocks:
        text = tag.get_text(" ", strip=True)
        if tag.name in _HEADINGS and text:
            builder.add("\n".join(section), [h for _, h in path_])
            section = []
            level = int(tag.name[1])
            path_ = [(lvl, h) for lvl, h in path_ if lvl < level] + [(level, text)]
            title = title or (text if level == 1 else None)
        if text:
            section.append(text)
    builder.add("\n".join(section), [h for _, h in path_])
    return builder.build(title)
