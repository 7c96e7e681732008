"""Icons from ``resources/icons/*.svg``, loaded through one place and cached.

SVGs scale cleanly at 200 % and are drawn with ``currentColor``-free neutral tones that read on light and dark
palettes. A missing file gives an empty icon and a logged warning, never a crash.
"""

from __future__ import annotations

import logging
from functools import cache

from PySide6.QtGui import QIcon

from desktop.paths import resource_path

log = logging.getLogger(__name__)


@cache
def icon(name: str) -> QIcon:
    """The icon ``resources/icons/<name>.svg`` (cached; call only after QApplication exists)."""
    path = resource_path("icons", f"{name}.svg")
    if not path.exists():
        log.warning("icon %s not found at %s", name, path)
        return QIcon()
    return QIcon(str(path))
