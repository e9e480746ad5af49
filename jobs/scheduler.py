"""APScheduler wiring: every registered job on its schedule, each run through the runner."""

from __future__ import annotations

import logging
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from jobs.registry import load_all
from jobs.runner import run_job

log = logging.getLogger("jobs.scheduler")


def _trigger(schedule: dict[str, Any], timezone: str) -> Any:
    if "interval_seconds" in schedule:
        return IntervalTrigger(seconds=schedule["interval_seconds"], timezone=timezone)
    return CronTrigger(timezone=timezone, **schedule)


def build_scheduler(engine: Engine, *, timezone: str, blocking: bool) -> BaseScheduler:
    """A scheduler with every job that has a schedule. Missed runs coalesce into one: jobs are idempotent."""
    scheduler: BaseScheduler = (BlockingScheduler if blocking else BackgroundScheduler)(
        timezone=timezone, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600})
    for spec in load_all().values():
        if not spec.schedule:
            continue
        scheduler.add_job(run_job, _trigger(spec.schedule, timezone), id=spec.name, name=spec.name,
                          args=[spec.name], kwargs={"engine": engine, "trigger": "schedule"})
        log.info("scheduled %s %s", spec.name, spec.schedule)
    return scheduler
