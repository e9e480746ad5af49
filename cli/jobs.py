"""``loyalty jobs``: the scheduler process, and any job on demand."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from datetime import datetime
from typing import Any

import click

from cli.common import AS_OF, engine
from domain.settings import get_settings
from jobs.registry import load_all
from jobs.runner import ACTIVE, STOP, abandon_active_runs, abandon_orphaned_runs, run_job

log = logging.getLogger("jobs")


class ProgressBar:
    """A click progress bar drawn on stderr once a job reports how much work it has."""

    def __init__(self, label: str):
        self.label = label
        self.bar: Any = None
        self.shown = 0

    def update(self, done: int, total: int | None) -> None:
        if not total:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=click.get_text_stream("stderr"))  # type: ignore[operator]
            self.bar.__enter__()
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@click.group("jobs", invoke_without_command=True)
@click.pass_context
def jobs_group(ctx: click.Context) -> None:
    """Run the scheduler (no sub-command), or list and run jobs on demand.

    Every job holds a PostgreSQL advisory lock while it runs, so several `loyalty jobs` processes are safe:
    a second one skips a job already running elsewhere.
    """
    if ctx.invoked_subcommand is None:
        from jobs.scheduler import build_scheduler

        settings = get_settings()
        stop_on_signals()
        abandon_orphaned_runs(engine())
        scheduler = build_scheduler(engine(), timezone=settings.scheduler_timezone, blocking=False)
        if settings.jobs_http_port:
            from jobs.http import start_jobs_http

            start_jobs_http(engine(), host=settings.jobs_http_host, port=settings.jobs_http_port,
                            healthy=lambda: bool(scheduler.running) and not STOP.is_set())
        scheduler.start()
        log.info("scheduler running; SIGTERM or Ctrl-C to stop")
        while not STOP.wait(1):
            pass
        scheduler.shutdown(wait=False)  # no new runs; the running ones stop at their next chunk
        deadline = time.monotonic() + settings.shutdown_grace_seconds
        while ACTIVE and time.monotonic() < deadline:
            time.sleep(0.1)
        log.info("scheduler stopped")


@jobs_group.command("list")
def list_jobs() -> None:
    """List every job with its schedule."""
    for spec in sorted(load_all().values(), key=lambda s: s.name):
        schedule = json.dumps(spec.schedule) if spec.schedule else "on demand"
        click.echo(f"{spec.name:28} {schedule:40} {spec.description.splitlines()[0] if spec.description else ''}")


@jobs_group.command("run")
@click.argument("name")
@click.option("--as-of", type=AS_OF, default=None, help="Act as if it were this time (default: now).")
@click.option("--progress/--no-progress", default=True, help="Draw a progress bar on long runs.")
def run(name: str, as_of: datetime | None, progress: bool) -> None:
    """Run job NAME once, now or --as-of a date; prints its counts."""
    specs = load_all()
    if name not in specs:
        raise click.BadParameter(f"unknown job {name!r}; known: {', '.join(sorted(specs))}", param_hint="NAME")
    bar = ProgressBar(name) if progress else None
    stop_on_signals()
    abandon_orphaned_runs(engine(), job=name)
    try:
        outcome = run_job(name, engine=engine(), as_of=as_of, on_progress=bar.update if bar else None)
    finally:
        if bar:
            bar.close()
    click.echo(json.dumps({"job": name, "run_id": outcome.run_id, "status": outcome.status,
                           "counts": outcome.counts, "error": outcome.error}, default=str))
    if outcome.status in ("failed", "abandoned"):
        raise SystemExit(1)


def stop_on_signals() -> None:
    """SIGTERM (``docker stop``, also as PID 1, where the default action is to ignore it) and SIGINT set the
    stop flag: running jobs end at their next chunk boundary and are recorded as abandoned. A job that reaches
    no boundary within the grace period is recorded as abandoned and the process exits anyway (its
    transaction in flight rolls back with the connection)."""
    grace = get_settings().shutdown_grace_seconds

    def force_exit() -> None:
        time.sleep(grace)
        if ACTIVE:
            with contextlib.suppress(Exception):
                abandon_active_runs(engine(), f"the process was stopped and the run reached no chunk boundary "
                                              f"within {grace:g} s")
            logging.shutdown()
            os._exit(1)

    def on_signal(signum: int, _frame: object) -> None:
        if not STOP.is_set():
            log.warning("%s: stopping after the current chunk", signal.Signals(signum).name)
            STOP.set()
            threading.Thread(target=force_exit, name="stop-deadline", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def register(main: click.Group) -> None:
    main.add_command(jobs_group)
