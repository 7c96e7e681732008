"""Case-insensitive "contains" for search boxes and list filters, the same for every letter on every database.

SQLite's own ``lower()`` and ``LIKE`` fold only the ASCII letters, so on the default database "müller" did not
find "MÜLLER" and "zoë" did not find "ZOË", while PostgreSQL found both. Each SQLite connection therefore gets
``callslip_lower()``, Python's ``str.lower``, and a search word with any non-ASCII letter compares through it.
An ASCII word keeps the built-in, C-speed comparison: only ASCII letters can match its letters, and those fold
the same either way. So a Python call per row is paid only when someone types such a word.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from sqlalchemy import ColumnElement, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

#: The SQLite function name registered on every connection (``engine._configure_sqlite``).
SQLITE_LOWER = "callslip_lower"


#: Longest search or filter text looked at. No stored name, title or address is this long, so a longer text
#: cannot match anything, and a LIKE over a huge pattern costs time on every row.
MAX_SEARCH_TEXT = 500

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def search_text(text: str) -> str | None:
    """``text`` as search words understand it: control characters (a pasted NUL, a tab) become spaces.

    Returns ``None`` when the text is longer than :data:`MAX_SEARCH_TEXT` (it can match nothing). A NUL must never
    reach the database: PostgreSQL refuses it in a string and SQLite's LIKE ends the pattern there, so "ada␀x"
    matched every row.
    """
    if len(text) > MAX_SEARCH_TEXT:
        return None
    return _CONTROL.sub(" ", text)


def like_contains(text: str) -> str:
    """A LIKE pattern (escape character ``\\``) matching values that contain ``text`` literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def register_sqlite_functions(connection: sqlite3.Connection) -> None:
    """Give a new SQLite connection the functions the queries of this module use."""
    connection.create_function(SQLITE_LOWER, 1, _lower, deterministic=True)


class unicode_lower(FunctionElement[str]):  # noqa: N801 - named like the SQL functions it stands for
    """``lower(x)`` that folds every letter: the built-in on PostgreSQL, :data:`SQLITE_LOWER` on SQLite."""

    type = String()
    inherit_cache = True


@compiles(unicode_lower)
def _compile_lower(element: unicode_lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(unicode_lower, "sqlite")
def _compile_lower_sqlite(element: unicode_lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_LOWER}({compiler.process(element.clauses, **kw)})"


def contains_folded(column: ColumnElement[Any] | QueryableAttribute[Any], word: str) -> ColumnElement[bool]:
    """``column`` contains ``word``, ignoring case, wildcards in ``word`` taken literally."""
    if word.isascii():
        return column.ilike(like_contains(word), escape="\\")
    return unicode_lower(column).like(like_contains(word.lower()), escape="\\")
