"""Schemas shared by every route."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Path
from pydantic import BaseModel, ConfigDict


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    """The one error shape of the API."""

    error: ErrorDetail


M = TypeVar("M", bound=BaseModel)

MAX_ID = 2**31 - 1
MemberId = Annotated[int, Path(ge=1, le=MAX_ID, description="The member's id")]
"""A member id in a path: out-of-range ids are a 422, not a database error."""


def from_row(schema: type[M], row: object, **extra: Any) -> M:
    """Build a response from a table row's attributes (plus computed ``extra`` fields)."""
    values = {name: getattr(row, name) for name in schema.model_fields if hasattr(row, name)}
    return schema.model_validate({**values, **extra})


class StrictModel(BaseModel):
    """Request bodies refuse unknown fields: a typo is an error, not a silently ignored value."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in [(400, "Bad request"), (401, "Missing or invalid API key"),
                         (403, "The key's scope does not allow this"), (404, "Not found"),
                         (409, "Conflict with stored data"), (422, "Invalid input"),
                         (503, "Database unavailable; retry")]
}
