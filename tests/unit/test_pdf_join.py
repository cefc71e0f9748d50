"""The PDF joiner: pages in order, one page tree, a working outline, a file qpdf and pypdf read
without complaint, and memory that does not hold the inputs together."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pikepdf
import pytest
from pypdf import PdfReader
from weasyprint import HTML

from tracker.reports.pdf_join import Bookmark, _Output, join_pdfs


def _pdf(folder: Path, name: str, pages: list[str]) -> Path:
    body = "".join(f'<h2 style="page-break-before: always">{text}</h2>' for text in pages)
    path = folder / f"{name}.pdf"
    HTML(string=f"<html><body>{body}</body></html>").write_pdf(path)
    return path


def test_join_keeps_every_page_in_order_with_its_text_and_bookmarks(tmp_path: Path) -> None:
    files = [
        _pdf(tmp_path, "front", ["Front «ü»"]),
        _pdf(tmp_path, "a", ["Alpha one", "Alpha two"]),
        _pdf(tmp_path, "b", ["Beta (one) \\ two"]),
    ]
    output = io.BytesIO()
    count = join_pdfs(
        files,
        output,
        title="Report — ü",
        author="auditor (Printed Name)",
        bookmarks=[Bookmark("Front", 0), Bookmark("Beta", 3), Bookmark("out of range", 9)],
    )
    assert count == 4
    reader = PdfReader(io.BytesIO(output.getvalue()))
    texts = [page.extract_text() for page in reader.pages]
    assert [t.strip() for t in texts] == [
        "Front «ü»",
        "Alpha one",
        "Alpha two",
        "Beta (one) \\ two",
    ]
    assert reader.metadata is not None
    assert reader.metadata.title == "Report — ü"
    assert reader.metadata.author == "auditor (Printed Name)"
    outline = [(item.title, reader.get_destination_page_number(item)) for item in reader.outline]
    assert outline == [("Front", 0), ("Beta", 3)]
    with pikepdf.open(io.BytesIO(output.getvalue())) as pdf:
        assert pdf.check_pdf_syntax() == []
        assert len(pdf.pages) == 4


def test_join_of_one_file_without_bookmarks(tmp_path: Path) -> None:
    output = io.BytesIO()
    assert join_pdfs([_pdf(tmp_path, "only", ["Only"])], output, title="t", author="a") == 1
    reader = PdfReader(io.BytesIO(output.getvalue()))
    assert reader.outline == [] and reader.pages[0].extract_text().strip() == "Only"


def test_every_xref_entry_points_at_its_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The xref table, written in chunks (three entries each here), gives each object's
    offset exactly: a reader that trusts it, as any reader may, finds ``n 0 obj`` there."""
    monkeypatch.setattr(_Output, "XREF_CHUNK", 3)
    output = io.BytesIO()
    join_pdfs(
        [_pdf(tmp_path, "a", ["One", "Two"]), _pdf(tmp_path, "b", ["Three"])],
        output,
        title="t",
        author="a",
    )
    data = output.getvalue()
    start = int(re.search(rb"startxref\n(\d+)\n%%EOF\n$", data).group(1))  # type: ignore[union-attr]
    table = data[start:].split(b"trailer", 1)[0].splitlines()
    assert table[0] == b"xref"
    first, count = (int(n) for n in table[1].split())
    assert first == 0 and count == len(table) - 2 > 3
    for number, line in enumerate(table[3:], start=1):
        offset = int(line[:10])
        assert data[offset:].startswith(b"%d 0 obj\n" % number), number
