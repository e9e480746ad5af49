"""One way to page through any list: keyset (cursor) pagination, newest first.

A list is ordered by a few columns ending in the primary key, all descending; the cursor is the sort key of
the last row shown, opaque to the caller (base64url JSON). Unlike ``OFFSET``, a page costs the same on page
1,000 as on page 1, and rows inserted meanwhile neither repeat nor vanish from the pages still to come.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlmodel import Session

from domain.errors import InvalidInput

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class Page(Generic[T]):
    """A slice of a list and the cursor of the slice after it (``None`` on the last page)."""

    items: list[T]
    next_cursor: str | None

    def map(self, convert: Callable[[T], R]) -> Page[R]:
        return Page(items=[convert(item) for item in self.items], next_cursor=self.next_cursor)


def _plain(value: Any) -> Any:
    return {"t": value.isoformat()} if isinstance(value, datetime) else value


def _typed(value: Any) -> Any:
    return datetime.fromisoformat(value["t"]) if isinstance(value, dict) and "t" in value else value


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([_plain(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, width: int) -> list[Any]:
    """The sort key inside a cursor; a cursor that was not made by :func:`encode_cursor` is a 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("the cursor is not one this API handed out", code="invalid_cursor") from exc
    if not isinstance(values, list) or len(values) != width:
        raise InvalidInput("the cursor is not one this API handed out", code="invalid_cursor")
    return [_typed(v) for v in values]


def keyset_page(session: Session, query: Any, *, order_by: Sequence[Any], cursor: str | None, limit: int,
                scalars: bool = True) -> Page[Any]:
    """Run ``query`` ordered by ``order_by`` (descending; the last column unique, usually the id) from
    ``cursor`` on, and return ``limit`` rows with the next page's cursor.

    ``order_by`` columns must be NOT NULL: a row tuple is compared with the cursor as one value."""
    limit = max(1, min(limit, MAX_LIMIT))
    if cursor:
        after = decode_cursor(cursor, width=len(order_by))
        query = query.where(sa.tuple_(*order_by) < sa.tuple_(*[sa.literal(v, type_=c.type)
                                                                 for v, c in zip(after, order_by, strict=True)]))
    query = query.order_by(*[c.desc() for c in order_by]).limit(limit + 1)
    if scalars:
        rows: list[Any] = list(session.scalars(query))
    else:
        rows = list(session.execute(query).all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = encode_cursor([_key_of(last, c) for c in order_by])
    return Page(items=rows, next_cursor=next_cursor)


def _key_of(row: Any, column: Any) -> Any:
    name = column.key
    if hasattr(row, "_mapping"):  # a row of several entities or labelled columns
        return row._mapping[name] if name in row._mapping else getattr(row[0], name)
    return getattr(row, name)
