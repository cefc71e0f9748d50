"""The PDF joiner: pages in order, one page tree, a working outline, a file qpdf and pypdf read
without complaint, and memory that does not hold the inputs together."""

from __future__ import annotations

import io
from pathlib import Path

import pikepdf
from pypdf import PdfReader
from weasyprint import HTML

from tracker.reports.pdf_join import Bookmark, join_pdfs


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
