"""Joining PDF files one after another without holding them together in memory.

Each file is opened in turn, the objects its pages reach are renumbered and written out as
they are read, and only their numbers and byte offsets are kept. Memory is that of the
largest file, whatever the number of files; qpdf's own page copying (``Pdf.pages.extend``)
holds every copied object until the end, about 1 GB for a thousand participants' detail.
The joined file has one page tree and a flat outline (bookmarks) given by the caller.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import pikepdf

HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"


@dataclass(frozen=True)
class Bookmark:
    """An outline entry: its title and the page (0-based, in the joined file) it opens."""

    title: str
    page: int


def _literal(text: str) -> bytes:
    """A PDF text string: UTF-16 with its byte-order mark, as hex (nothing to escape)."""
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


class _Output:
    """Writes numbered objects and remembers where each one starts, for the xref table.

    The offsets are the one thing kept for the whole file (some 85 objects a participant), so
    they are 8 bytes each in an array, not a dict of Python ints (about 100 bytes each), and
    the xref table is written in chunks instead of being built whole."""

    XREF_CHUNK = 10_000

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.position = 0
        self.offsets = array("Q")  # offsets[n - 1]: where object n starts
        self.write(HEADER)

    @property
    def count(self) -> int:
        return len(self.offsets)

    def write(self, data: bytes) -> None:
        self.stream.write(data)
        self.position += len(data)

    def reserve(self) -> int:
        self.offsets.append(0)
        return len(self.offsets)

    def put(self, number: int, body: bytes) -> None:
        self.offsets[number - 1] = self.position
        self.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")

    def finish(self, root: int, info: int) -> None:
        if 0 in self.offsets:  # a reserved number that was never written
            raise ValueError(f"object {self.offsets.index(0) + 1} was reserved but not written")
        start = self.position
        self.write(b"xref\n0 %d\n0000000000 65535 f \n" % (self.count + 1))
        for first in range(0, self.count, self.XREF_CHUNK):
            chunk = self.offsets[first : first + self.XREF_CHUNK]
            self.write(b"".join(b"%010d 00000 n \n" % offset for offset in chunk))
        self.write(
            b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (self.count + 1, root, info, start)
        )


def _scalar(value: Any) -> bytes:
    if value is None:
        return b"null"
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, Decimal | float):
        text = format(Decimal(value).normalize(), "f")
        return text.encode()
    return bytes(value.unparse())


class _File:
    """One input file: its objects get new numbers on first sight and are written once."""

    def __init__(self, output: _Output, pages_root: int) -> None:
        self.output = output
        self.pages_root = pages_root
        self.numbers: dict[tuple[int, int], int] = {}
        self.pending: list[Any] = []

    def number(self, obj: Any) -> int:
        key = obj.objgen
        if key not in self.numbers:
            self.numbers[key] = self.output.reserve()
            self.pending.append(obj)
        return self.numbers[key]

    def serialise(self, value: Any, *, top: bool = False) -> bytes:
        if isinstance(value, pikepdf.Object) and value.is_indirect and not top:
            return b"%d 0 R" % self.number(value)
        if not isinstance(value, pikepdf.Object):
            return _scalar(value)
        kind = value._type_code
        if kind in (pikepdf.ObjectType.dictionary, pikepdf.ObjectType.stream):
            items = (
                value.stream_dict.items() if kind is pikepdf.ObjectType.stream else value.items()
            )
            parts = [b"<<"]
            for key, item in items:
                if key == "/Length" and kind is pikepdf.ObjectType.stream:
                    continue
                if key == "/Parent" and value.get("/Type") == "/Page":
                    item_bytes = b"%d 0 R" % self.pages_root
                else:
                    item_bytes = self.serialise(item)
                parts.append(bytes(pikepdf.Name(key).unparse()) + b" " + item_bytes)
            if kind is pikepdf.ObjectType.stream:
                raw = value.read_raw_bytes()
                parts.append(b"/Length %d >>\nstream\n" % len(raw) + raw + b"\nendstream")
                return b" ".join(parts)
            parts.append(b">>")
            return b" ".join(parts)
        if kind is pikepdf.ObjectType.array:
            return b"[" + b" ".join(self.serialise(item) for item in value) + b"]"
        return _scalar(value)

    def drain(self) -> None:
        while self.pending:
            obj = self.pending.pop()
            self.output.put(self.numbers[obj.objgen], self.serialise(obj, top=True))


def join_pdfs(
    paths: Sequence[Path],
    output: BinaryIO,
    *,
    title: str,
    author: str,
    bookmarks: Sequence[Bookmark] = (),
    on_file: Callable[[int], None] | None = None,
) -> int:
    """Write the pages of ``paths``, in order, as one PDF to ``output``; the number of pages."""
    out = _Output(output)
    pages_root, catalog, info = out.reserve(), out.reserve(), out.reserve()
    kids: list[int] = []
    for index, path in enumerate(paths):
        with pikepdf.open(path) as pdf:
            part = _File(out, pages_root)
            kids.extend(part.number(page.obj) for page in pdf.pages)
            part.drain()
        if on_file is not None:
            on_file(index)

    outline = _write_outline(out, bookmarks, kids)
    out.put(
        pages_root,
        b"<< /Type /Pages /Count %d /Kids [" % len(kids)
        + b" ".join(b"%d 0 R" % kid for kid in kids)
        + b"] >>",
    )
    root = b"<< /Type /Catalog /Pages %d 0 R" % pages_root
    if outline is not None:
        root += b" /Outlines %d 0 R /PageMode /UseOutlines" % outline
    out.put(catalog, root + b" >>")
    out.put(info, b"<< /Title " + _literal(title) + b" /Author " + _literal(author) + b" >>")
    out.finish(catalog, info)
    return len(kids)


def pages_and_outline(path: Path, offset: int = 0) -> tuple[int, list[Bookmark]]:
    """The number of pages of the PDF at ``path`` and its outline, flat and in reading order,
    the pages moved by ``offset`` (the file's first page in the joined one)."""
    with pikepdf.open(path) as pdf:
        pages: dict[tuple[int, int], int] = {
            page.obj.objgen: index for index, page in enumerate(pdf.pages)
        }
        found: list[Bookmark] = []
        with pdf.open_outline() as tree:
            stack = list(reversed(tree.root))
            while stack:
                item = stack.pop()
                destination = item.destination
                if isinstance(destination, pikepdf.Array) and len(destination):
                    page = pages.get(destination[0].objgen)
                    if page is not None:
                        found.append(Bookmark(item.title, page + offset))
                stack.extend(reversed(item.children))
        return len(pages), found


def _write_outline(out: _Output, bookmarks: Sequence[Bookmark], kids: list[int]) -> int | None:
    """A flat outline: one entry per bookmark, each opening its page whole."""
    entries = [b for b in bookmarks if 0 <= b.page < len(kids)]
    if not entries:
        return None
    outline = out.reserve()
    numbers = [out.reserve() for _ in entries]
    for position, (bookmark, number) in enumerate(zip(entries, numbers, strict=True)):
        body = b"<< /Title " + _literal(bookmark.title) + b" /Parent %d 0 R" % outline
        if position:
            body += b" /Prev %d 0 R" % numbers[position - 1]
        if position + 1 < len(numbers):
            body += b" /Next %d 0 R" % numbers[position + 1]
        body += b" /Dest [%d 0 R /Fit] >>" % kids[bookmark.page]
        out.put(number, body)
    out.put(
        outline,
        b"<< /Type /Outlines /First %d 0 R /Last %d 0 R /Count %d >>"
        % (numbers[0], numbers[-1], len(numbers)),
    )
    return outline
