"""Starting the app or a command loads nothing only a PDF needs (issue 19): the PDF engines and
their libraries are imported when a PDF is made, so every command and worker starts without
them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PDF_ONLY = ("typst", "weasyprint", "pikepdf", "pypdf", "fontTools")


def test_the_app_starts_without_the_pdf_libraries(tmp_path: Path) -> None:
    program = (
        "import json, sys\n"
        "from tracker import create_app\n"
        "create_app(overrides={'env': 'testing', 'database_url': 'sqlite://',"
        f" 'instance_path': {str(tmp_path)!r}, 'secret_key': 'x' * 40}}, environ={{}})\n"
        f"print(json.dumps([m for m in {PDF_ONLY!r} if m in sys.modules]))\n"
    )
    outcome = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(outcome.stdout.strip().splitlines()[-1]) == []
