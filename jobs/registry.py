"""Every job of the product: name → function, schedule and description.

A job is ``def run(ctx: JobContext) -> dict[str, int]`` returning its counts. It must be idempotent
(re-running it at the same ``as_of`` changes nothing) and set-based (SQL over all members).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobs.context import JobContext

JobFunc = Callable[[JobContext], dict[str, Any]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    func: JobFunc
    description: str
    schedule: dict[str, Any] = field(default_factory=dict)
    """APScheduler cron fields (``{"hour": 2, "minute": 30}``) or ``{"interval_seconds": 30}``."""
    exclusive: bool = True
    """Hold an advisory lock so only one process runs it at a time."""


JOBS: dict[str, JobSpec] = {}


def register(spec: JobSpec) -> JobSpec:
    if spec.name in JOBS:
        raise ValueError(f"job {spec.name!r} registered twice")
    JOBS[spec.name] = spec
    return spec


def load_all() -> dict[str, JobSpec]:
    """Import every job module so it registers itself."""
    import jobs.catalog  # noqa: F401

    return JOBS
