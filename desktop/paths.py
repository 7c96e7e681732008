"""Where bundled files are: from a source checkout, an installed package, or a PyInstaller bundle.

PyInstaller unpacks data next to the executable (``sys._MEIPASS``) at the same relative paths as in the source
tree, so one helper serves all three cases.
"""

from __future__ import annotations

import sys
from pathlib import Path


def app_root() -> Path:
    """The folder holding ``resources/`` and ``templates/``."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen)
    return Path(__file__).resolve().parent.parent


def resource_path(*parts: str) -> Path:
    """A file under ``resources/`` (icons, images)."""
    return app_root().joinpath("resources", *parts)


def template_path(*parts: str) -> Path:
    """A default notification template under ``templates/``."""
    return app_root().joinpath("templates", *parts)
