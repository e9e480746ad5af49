"""Shared CLI plumbing: logging, the engine, date options, the domain-error exit."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

import click
from sqlalchemy.engine import Engine
from sqlmodel import Session

from cli.logs import setup_logging
from domain.clock import ensure_aware
from domain.db import get_engine, resolve_database_url, set_engine, unit_of_work
from domain.errors import DomainError
from domain.settings import get_settings

F = TypeVar("F", bound=Callable[..., Any])


def engine() -> Engine:
    """The engine for this command; the resolved URL is exported so child processes use the same server."""
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = resolve_database_url()
        get_settings.cache_clear()
    return get_engine()


@contextmanager
def session_scope() -> Iterator[Session]:
    """One committed transaction for a CLI action."""
    with unit_of_work(engine()) as session:
        yield session
        session.commit()


def handle_domain_errors(func: F) -> F:
    """Show a business refusal as a one-line error and exit 2, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DomainError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from exc

    return wrapper  # type: ignore[return-value]


class AsOf(click.ParamType):
    """A date or datetime; naive values are read as UTC."""

    name = "DATETIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return ensure_aware(value)
        try:
            return ensure_aware(datetime.fromisoformat(str(value)))
        except ValueError:
            self.fail(f"{value!r} is not an ISO date or datetime (e.g. 2026-11-22 or 2026-11-22T02:00+08:00)",
                      param, ctx)


AS_OF = AsOf()

__all__ = ["AS_OF", "engine", "handle_domain_errors", "session_scope", "set_engine", "setup_logging"]
