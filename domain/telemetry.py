"""Prometheus metrics: every family the service exposes is declared here, once.

Why in ``domain``: some facts are only seen inside a service (the gate's verdicts, a pool checkout), and the
API, the jobs and the integrations all count into the same families. Declaring a metric is bookkeeping, not
infrastructure: nothing here serves HTTP (``/metrics`` in ``api``, the jobs' own listener in ``jobs``).

Several uvicorn workers: ``loyalty serve --workers N`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers
start, so each process writes its values to files there and a scrape of any worker sums them
(prometheus-client's multiprocess mode). Gauges say how they combine (``livesum``: over live processes).

Facts that live in the database (outbox backlog, each job's last success) are read at scrape time by
``DatabaseCollector``, so every process reports the same truth and a restart loses nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import event
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

HTTP_REQUEST_SECONDS = Histogram(
    "loyalty_http_request_duration_seconds", "HTTP requests by route template, method and status",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
GATE_DECISIONS = Counter("loyalty_gate_decisions_total", "Contact-gate decisions recorded, by verdict",
                         ["verdict", "purpose", "channel"])
GATE_DECISION_REASONS = Counter(
    "loyalty_gate_decision_reasons_total",
    "Reasons given with recorded gate decisions (a decision with two reasons counts once under each)",
    ["verdict", "reason"])
JOB_SECONDS = Histogram("loyalty_job_duration_seconds", "Job run duration, by job and outcome", ["job", "status"],
                        buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600))
JOB_RUNS = Counter("loyalty_job_runs_total", "Job runs by outcome", ["job", "status"])
JOB_ITEMS = Counter("loyalty_job_items_total", "What job runs counted (their numeric counts), by job and count",
                    ["job", "count"])
WECHAT_API_ERRORS = Counter("loyalty_wechat_api_errors_total",
                            "WeChat API calls that failed, by WeChat errcode (``network`` when no answer came)",
                            ["code"])
CHANNEL_DELIVERIES = Counter("loyalty_channel_deliveries_total", "Outbox deliveries by channel and outcome",
                             ["channel", "outcome"])
DB_POOL_IN_USE = Gauge("loyalty_db_pool_connections_in_use", "Connections checked out of the pools",
                       multiprocess_mode="livesum")
DB_POOL_CAPACITY = Gauge("loyalty_db_pool_capacity", "Pool size plus overflow, summed over live processes",
                         multiprocess_mode="livesum")


def count_gate_decisions(decisions: Iterable[tuple[str, str, str, Iterable[str]]]) -> None:
    """Count recorded decisions given as (verdict, purpose, channel, reasons)."""
    count_gate_decision_groups((verdict, purpose, channel, reasons, 1)
                               for verdict, purpose, channel, reasons in decisions)


def count_gate_decision_groups(groups: Iterable[tuple[str, str, str, Iterable[str], int]]) -> None:
    """Count ``n`` recorded decisions alike, given as (verdict, purpose, channel, reasons, n): a batch decided in
    SQL sends its counts grouped, not one row per touch."""
    for verdict, purpose, channel, reasons, n in groups:
        GATE_DECISIONS.labels(verdict, purpose, channel).inc(n)
        for reason in reasons:
            GATE_DECISION_REASONS.labels(verdict, reason).inc(n)


def count_job_run(job: str, status: str, seconds: float, counts: dict[str, Any]) -> None:
    JOB_RUNS.labels(job, status).inc()
    JOB_SECONDS.labels(job, status).observe(seconds)
    for key, value in counts.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            JOB_ITEMS.labels(job, key).inc(value)


def instrument_pool(engine: Engine) -> None:
    """Follow the engine's pool: checkouts minus checkins is what this process holds now."""
    pool: Any = engine.pool
    capacity = (pool.size() + max(0, getattr(pool, "_max_overflow", 0))) if hasattr(pool, "size") else 0
    DB_POOL_CAPACITY.inc(capacity)
    event.listen(engine, "checkout", lambda *_: DB_POOL_IN_USE.inc())
    event.listen(engine, "checkin", lambda *_: DB_POOL_IN_USE.dec())


OUTBOX_SQL = sa.text("""
SELECT count(*) AS due, coalesce(extract(epoch FROM now() - min(send_at)), 0) AS oldest_seconds
FROM touches WHERE status IN ('queued', 'sending') AND send_at <= now()
""")
LAST_SUCCESS_SQL = sa.text("""
SELECT job, extract(epoch FROM max(finished_at)) FROM job_runs WHERE status = 'succeeded' GROUP BY job
""")


class DatabaseCollector(Collector):
    """Facts read from PostgreSQL at scrape time (bounded by a short statement timeout).

    The outbox's due touches are read through the partial index ``ix_touches_due``; the age is against the
    database's clock, so it agrees with the dispatchers'.
    """

    def __init__(self, engine: Engine, *, timeout_ms: int = 2000):
        self.engine = engine
        self.timeout_ms = timeout_ms

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("loyalty_database_up", "1 when the database answered this scrape")
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text(f"SET LOCAL statement_timeout = {int(self.timeout_ms)}"))
                due, oldest = conn.execute(OUTBOX_SQL).one()
                last = conn.execute(LAST_SUCCESS_SQL).all()
        except sa.exc.SQLAlchemyError as exc:
            log.warning("metrics: database not readable: %s", exc.__class__.__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily("loyalty_outbox_due", "Outbox entries due and not yet delivered", labels=["outbox"])
        age = GaugeMetricFamily("loyalty_outbox_oldest_due_age_seconds",
                                "How long the oldest due outbox entry has waited", labels=["outbox"])
        depth.add_metric(["touches"], float(due))
        age.add_metric(["touches"], float(oldest))
        yield depth
        yield age
        success = GaugeMetricFamily("loyalty_job_last_success_timestamp_seconds",
                                    "When each job last finished successfully (Unix time)", labels=["job"])
        for job, at in last:
            success.add_metric([job], float(at))
        yield success


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition(engine: Engine | None) -> bytes:
    """The text exposition for a scrape: this process's metrics (or every worker's, in multiprocess mode),
    then the database's facts."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    if engine is not None:
        db_registry = CollectorRegistry()
        db_registry.register(DatabaseCollector(engine))
        text += generate_latest(db_registry)
    return text


def mark_process_dead(pid: int) -> None:
    """Drop a stopped process's live gauges (multiprocess mode)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def metrics_token_accepted(authorization: str | None, *, token: str) -> bool:
    """Whether a scrape may read metrics: ``Authorization: Bearer <LOYALTY_METRICS_TOKEN>``, compared in
    constant time. An unset token admits nobody (metrics name jobs, routes and volumes: not public)."""
    import hmac

    if not token or not authorization or not authorization.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(authorization[7:].strip().encode(), token.encode())
