"""What a job gets from the runner."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from domain.db import unit_of_work


class JobStopped(Exception):
    """Raised at a chunk boundary once the process is stopping: the chunks before it are committed, the run
    is recorded as abandoned, and the next run carries on (jobs are idempotent)."""


class Progress:
    """Counts work done; the CLI draws it as a bar, the scheduler only logs it."""

    def __init__(self, on_update: Callable[[int, int | None], None] | None = None,
                 should_stop: Callable[[], bool] | None = None):
        self.done = 0
        self.total: int | None = None
        self._on_update = on_update
        self._should_stop = should_stop

    def start(self, total: int | None) -> None:
        self.total = total
        self._emit()

    def advance(self, n: int = 1) -> None:
        """Called by jobs after each committed chunk: the place a stopping process abandons the run cleanly."""
        self.done += n
        self._emit()
        if self._should_stop and self._should_stop():
            raise JobStopped

    def _emit(self) -> None:
        if self._on_update:
            self._on_update(self.done, self.total)


@dataclass
class JobContext:
    engine: Engine
    as_of: datetime
    """The instant the job acts at: ``now`` when scheduled, any time on demand (``--as-of``)."""
    log: logging.Logger
    progress: Progress = field(default_factory=Progress)
    options: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def unit_of_work(self, connection: Connection | None = None) -> Iterator[Session]:
        """One transaction; the job commits it. Jobs use one per chunk so one failure does not sink the batch.
        ``connection``: the run's own (``connection()``) instead of one from the pool for this chunk."""
        with unit_of_work(connection or self.engine) as session:
            yield session

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """One connection for a run's chunks, each still its own unit of work on it: a pooled unit of work per
        chunk checks a connection out and pings it first, a round trip and the pool's bookkeeping every chunk."""
        with self.engine.connect() as connection:
            yield connection
