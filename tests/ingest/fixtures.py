"""Small fixture files written by the tests themselves (no data files in the repository)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragpipe.config import load_settings
from ragpipe.ingest.testing import HashingEmbedder


@pytest.fixture
def embedder() -> HashingEmbedder:
    """A fast, model-free embedder (hashing trick)."""
    return HashingEmbedder()


@pytest.fixture
def settings():
    """Small chunks, so a few sentences make several."""
    return load_settings(chunking__chunk_tokens=40, chunking__overlap_tokens=8)


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def write_pdf(path: Path, pages: list[list[tuple[int, int, str]]]) -> Path:
    """A minimal valid PDF; each page is a list of (x, y, text) lines in Helvetica."""
    objects: list[bytes] = []
    n_pages = len(pages)
    font_id = 3 + 2 * n_pages
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, lines in enumerate(pages):
        content = "".join(f"BT /F1 11 Tf {x} {y} Td ({_pdf_escape(t)}) Tj ET\n" for x, y, t in lines).encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{off:010d} 00000 n \n" for off in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


def write_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Annual Report", 0)
    document.add_heading("Revenue", 1)
    document.add_paragraph("Revenue grew by twelve percent in the northern region.")
    document.add_heading("Outlook", 2)
    document.add_paragraph("The board expects slower growth next year.")
    table = document.add_table(rows=2, cols=2)
    for (r, c), text in {(0, 0): "region", (0, 1): "growth", (1, 0): "north", (1, 1): "12%"}.items():
        table.cell(r, c).text = text
    document.save(str(path))
    return path


def write_corpus(root: Path, n_files: int = 6, sentences: int = 12) -> Path:
    """A folder of plain-text files with distinct vocabulary per file."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        body = " ".join(f"File {i} talks about topic{i} and item{i}x{j} in sentence {j}." for j in range(sentences))
        (root / f"doc{i:02d}.txt").write_text(body)
    return root
