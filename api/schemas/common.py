"""Schemas shared by every route."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from domain.paging import DEFAULT_LIMIT, MAX_LIMIT
from domain.paging import Page as DomainPage


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any]
    request_id: str | None = None
    """The request's id (also in ``X-Request-ID`` and in its log lines): quote it when reporting an error."""


class ErrorResponse(BaseModel):
    """The one error shape of the API."""

    error: ErrorDetail


M = TypeVar("M", bound=BaseModel)

# Request bodies take the JSON type their schema states, nothing that merely converts to it. FastAPI validates a
# body in pydantic's lax python mode from the parsed JSON, where ``true`` is the integer 1, ``0`` is the boolean
# false, ``"5"`` is 5 and the number 0 is 1970-01-01: a till's ``"amount_fen": true`` would be a sale of 1 fen.
# So request models use pydantic's ``StrictBool`` and ``StrictFloat`` (a JSON integer is still a number) and the
# three types below. ``StrictInt`` is not enough: JSON Schema counts ``5.0`` as an integer, and it refuses it.
# A model-wide ``strict=True`` is not the way either: in python mode it refuses ISO text for dates and the string
# values of enums, which is what JSON carries. Query and path parameters arrive as text and keep their normal
# parsing. tests/api/test_openapi_fuzz.py checks every request body's fields against this.


def _refusing(kinds: tuple[type, ...], error: str, message: str) -> BeforeValidator:
    def refuse(value: Any) -> Any:
        if isinstance(value, kinds):
            raise PydanticCustomError(error, message)
        return value
    return BeforeValidator(refuse)


Integer = Annotated[int, _refusing((bool, str), "int_type", "Input should be a valid integer")]
"""A JSON integer (``5`` or ``5.0``), not ``true`` or ``"5"``."""

Day = Annotated[date, _refusing((int, float), "date_type", "Input should be a date as text, YYYY-MM-DD")]
"""A calendar date sent to the API: ``2026-03-01``, not a number (pydantic would read one as a Unix time)."""

Instant = Annotated[AwareDatetime, _refusing((int, float), "datetime_type",
                                             "Input should be a time as ISO 8601 text with its offset")]
"""A time sent to the API: it must carry its offset (``2026-03-01T10:00:00+08:00`` or ``…Z``). Without one it
is refused with 422 (``docs/rules.md``, time at the edges): guessing a zone for it was how a Shanghai
evening became a UTC one."""

Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+$")]
"""An e-mail address as far as the API checks one: something@something, no spaces or control characters. The
characters are listed, not ``\s``: Python, pydantic's Rust engine and a JSON Schema reader each count different
characters as spaces (U+0085, U+FEFF, U+001C-U+001F), so a client could not know what ``\s`` refused."""

MAX_ID = 2**31 - 1
MemberId = Annotated[int, Path(ge=1, le=MAX_ID, description="The member's id")]
"""A member id in a path: out-of-range ids are a 422, not a database error."""
OrderRef = Annotated[str, Path(min_length=1, max_length=64)]
"""An order's id (the caller's ``order_id``) in a path."""


def from_row(schema: type[M], row: object, **extra: Any) -> M:
    """Build a response from a table row's attributes (plus computed ``extra`` fields)."""
    # A loaded column's value is in the instance's dict: reading it there skips SQLAlchemy's attribute
    # descriptor (a tenth of the time); anything else (an expired column, a property) is read as before.
    loaded = getattr(row, "__dict__", {})
    values = {name: loaded[name] if name in loaded else getattr(row, name)
              for name in schema.model_fields if name in loaded or hasattr(row, name)}
    return schema.model_validate({**values, **extra})


_SPACE = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""What ``str_strip_whitespace`` strips (pydantic trims Unicode White_Space), listed rather than ``\s``, which
each regex engine reads differently."""


def _minimum_after_stripping(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """A string's ``minLength`` is checked after stripping: say so in the schema, as a pattern that needs that
    many characters from the first to the last one that is not a space (``" "`` is not a name)."""
    for prop in schema.get("properties", {}).values():
        for alt in [prop, *prop.get("anyOf", [])]:
            least = alt.get("minLength", 0)
            if alt.get("type") == "string" and least and not {"pattern", "format", "enum", "const"} & alt.keys():
                alt["pattern"] = (f"[^{_SPACE}]" if least == 1
                                  else f"[^{_SPACE}][\\s\\S]{{{least - 2},}}[^{_SPACE}]")


class StrictModel(BaseModel):
    """Request bodies refuse unknown fields: a typo is an error, not a silently ignored value. Strings are
    stripped of surrounding spaces, and their schema says a minimum length counts what is left."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra=_minimum_after_stripping)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in [(400, "Bad request"), (401, "Missing or invalid API key"),
                         (403, "The key's scope does not allow this"), (404, "Not found"),
                         (409, "Conflict with stored data"), (413, "Request body too large"),
                         (422, "Invalid input"),
                         (429, "Rate limit, or the member is busy with another request; retry after Retry-After"),
                         (503, "Database unavailable; retry")]
}


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """The one list envelope of the API: a page of items, newest (or most urgent) first, and the cursor of the
    next page. Ask again with ``?cursor=<next_cursor>`` until it is null."""

    items: list[T]
    next_cursor: str | None = Field(description="Opaque; pass it as `cursor` for the next page. Null on the last.")

    @classmethod
    def of(cls, page: DomainPage[Any], convert: Callable[[Any], T]) -> Page[T]:
        return cls(items=[convert(item) for item in page.items], next_cursor=page.next_cursor)


CursorQuery = Annotated[str | None, Query(max_length=400, description="`next_cursor` of the previous page")]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")]
DEFAULT_PAGE_LIMIT = DEFAULT_LIMIT


# A journey's and a campaign's reports answer conversion and uplift in the same shape.
class ConvertedOut(BaseModel):
    treatment: int
    control: int


class UpliftOut(BaseModel):
    treatment_rate: float | None
    control_rate: float | None
    uplift: float | None = Field(description="Treatment rate minus control rate; null without both groups")
    ci95: list[float | None] = Field(description="95% confidence interval of the uplift, [low, high]")
