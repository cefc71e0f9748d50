"""Lays out one Typst document in a process of its own: the document's JSON on stdin, the
PDF written to a file.

    python -I typst_worker.py TEMPLATE FONT_DIRECTORY OUTPUT TIMESTAMP < document.json

Typst keeps what it memoised over its recent compilations for the life of the process (some
70 MB a part of 50 participants, up to a gigabyte for a long report), so each part of the
compliance PDF is laid out by a short-lived process of this script and that memory goes with
it. It is run as a script, not as ``tracker.reports.typst_worker``, so it imports the
standard library and Typst only (not the app, some 0.7 s), and starts in some 50 ms.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path


def main(arguments: list[str]) -> int:
    import typst

    template, fonts, output, timestamp = arguments
    try:
        pdf = typst.compile(
            Path(template).read_bytes(),
            font_paths=typst.Fonts(
                include_system_fonts=False, include_embedded_fonts=False, font_paths=[fonts]
            ),
            ignore_system_fonts=True,
            sys_inputs={"document": sys.stdin.buffer.read().decode("utf-8")},
            timestamp=datetime.fromtimestamp(int(timestamp), UTC),
            pdf_tags=False,
        )
    except typst.TypstError as error:
        print(f"{error.message}\n{error.diagnostic}", file=sys.stderr)
        return 1
    assert isinstance(pdf, bytes)
    Path(output).write_bytes(pdf)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
