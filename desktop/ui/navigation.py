"""Opening a window by what it shows — a request, a patron, a Contact Card — so windows never import each other.

A window that wants another (the request form's patron link, the duplicates view's patron, Contact Customers'
double-click) asks here by :class:`Window` id. The windows themselves are registered once, by the composition
root :mod:`desktop.ui.windows`, which the main window (and the test suite) load. This keeps the import graph a
tree: every window depends on this small module, and only ``windows`` depends on every window.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from PySide6.QtWidgets import QWidget

from desktop.ui.context import AppContext
from desktop.ui.window_state import fit_to_screen

#: ``opener(ctx, *ids, parent=parent, **options)``: shows (or raises) the window and returns it.
Opener = Callable[..., Any]


class Window(StrEnum):
    """The windows one window may open from another, by what they show."""

    REQUEST = "request"  # (transaction_number, *, query=None): the request form
    PATRON = "patron"  # (patron_id): the patron record
    CONTACT_CARD = "contact_card"  # (patron_id, *, focus_contact_id=None, add=None)
    CONTACT_CUSTOMERS = "contact_customers"
    PATRON_SEARCH = "patron_search"
    DUPLICATES = "duplicates"
    BOUNCED = "bounced"  # the Bounced addresses list
    HOLD_SHELF = "hold_shelf"  # the Hold Shelf view
    IMPORT_CSV = "import_csv"  # (*, kind="patrons")
    CUSTOMIZATION = "customization"
    SETTINGS = "settings"
    LOCATIONS = "locations"


class WindowNotRegisteredError(LookupError):
    """Nobody registered an opener for that window (a programming error: :mod:`desktop.ui.windows` names all)."""


_openers: dict[Window, Opener] = {}


def register(window: Window, opener: Opener) -> None:
    """Make ``window`` openable; a second registration replaces the first (tests may register their own)."""
    _openers[window] = opener


def is_registered(window: Window) -> bool:
    """Whether :func:`open_window` can open ``window``."""
    return window in _openers


def open_window(window: Window, ctx: AppContext, parent: QWidget | None, *args: Any, **options: Any) -> Any:
    """Open ``window`` for ``ctx`` over ``parent`` and return it.

    Args:
        args: what the window shows (a transaction number, a patron id), as its :class:`Window` entry says.
        options: the window's own keyword options.

    Raises:
        WindowNotRegisteredError: no opener for ``window`` was registered.
    """
    opener = _openers.get(window)
    if opener is None:
        raise WindowNotRegisteredError(f"no window is registered for {window.value!r}")
    opened = opener(ctx, *args, parent=parent, **options)
    if isinstance(opened, QWidget) and opened.isWindow():
        fit_to_screen(opened)  # whatever size it chose or remembered, all of it on the screen
    return opened
