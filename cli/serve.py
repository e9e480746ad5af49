"""``loyalty serve``: the API (and the scheduler, unless --no-jobs)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from cli.common import engine
from cli.logs import logging_config
from domain import migrations
from domain.settings import get_settings
from domain.wechat.rules import configuration_problem


@click.command("serve")
@click.option("--host", default=None, help="Listen address (default LOYALTY_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Listen port (default LOYALTY_PORT, 8000).")
@click.option("--workers", type=int, default=None, help="Worker processes (default LOYALTY_WORKERS, or one per core).")
@click.option("--jobs/--no-jobs", "with_jobs", default=True,
              help="Run the scheduler in this process (default). Production runs `loyalty jobs` separately.")
@click.option("--migrate/--no-migrate", default=True, help="Apply migrations before serving (default).")
def serve(host: str | None, port: int | None, workers: int | None, with_jobs: bool, migrate: bool) -> None:
    """Serve the HTTP API. Without DATABASE_URL, starts the embedded PostgreSQL first."""
    import uvicorn

    from api.serving import uvicorn_options

    settings = get_settings()
    problem = configuration_problem(app_id=settings.wechat_app_id, token=settings.wechat_token,
                                    encoding_aes_key=settings.wechat_encoding_aes_key)
    if problem:
        raise click.ClickException(problem)
    eng = engine()
    if migrate:
        migrations.upgrade(eng)
        click.echo("migrations applied", err=True)
    scheduler = None
    if with_jobs:
        from jobs.runner import abandon_orphaned_runs
        from jobs.scheduler import build_scheduler

        abandon_orphaned_runs(eng)
        scheduler = build_scheduler(eng, timezone=settings.scheduler_timezone, blocking=False)
        scheduler.start()
    workers = workers or settings.worker_count()
    # The edge splits the rate limits by the number of workers: this process (one worker) and the workers
    # (new interpreters, which read the environment) must count the same.
    settings.workers = workers
    os.environ["LOYALTY_WORKERS"] = str(workers)
    if workers > 1:
        prepare_multiprocess_metrics()
    try:
        uvicorn.run("api.main:create_app", factory=True, host=host or settings.host, port=port or settings.port,
                    workers=workers, log_level=settings.log_level,
                    log_config=logging_config(), **uvicorn_options(settings))
    finally:
        if scheduler is not None:
            from jobs.runner import STOP

            STOP.set()  # in-process runs stop at their next chunk and are recorded as abandoned
            scheduler.shutdown(wait=False)


def prepare_multiprocess_metrics() -> None:
    """Several workers: each writes its metrics to files in one folder and a scrape of any worker sums them.
    The folder must be empty at start (values of a previous run would be counted again); an operator may
    name it with ``PROMETHEUS_MULTIPROC_DIR`` (a tmpfs in the container), else a fresh temporary one is used.
    The variable is inherited by the workers, which are new interpreters (spawned), so their
    prometheus-client starts in multiprocess mode."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="loyalty-metrics-")


def register(main: click.Group) -> None:
    main.add_command(serve)
