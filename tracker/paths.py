"""Where the app's own files are: beside the package in a source checkout, inside it in an
installed wheel (the build maps templates/, static/, migrations/ and fixtures/ into it)."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent


def app_directory(name: str) -> Path:
    """The app's directory ``name`` (``templates``, ``static``, ``migrations``, ``fixtures``)."""
    installed = PACKAGE_DIR / name
    return installed if installed.is_dir() else SOURCE_ROOT / name


TEMPLATES = app_directory("templates")
STATIC = app_directory("static")
MIGRATIONS = app_directory("migrations")
FIXTURES = app_directory("fixtures")
