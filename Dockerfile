# syntax=docker/dockerfile:1
# Production image: the service and its pinned dependencies only (requirements.lock, hashes checked).
# No compilers, no dev tools, no embedded PostgreSQL (that is for `./run serve` on a laptop); runs as a
# non-root user; the healthcheck asks /readyz (database reachable and at this code's migration head).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
COPY requirements.lock /tmp/requirements.lock
RUN /venv/bin/pip install --require-hashes -r /tmp/requirements.lock
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api api
COPY domain domain
COPY jobs jobs
COPY cli cli
COPY integrations integrations
# The project itself without dependencies (they are all in the lock): gives the `loyalty` command.
RUN /venv/bin/pip install --no-deps .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 loyalty \
 && useradd --system --uid 10001 --gid loyalty --home-dir /app --shell /usr/sbin/nologin loyalty \
 && mkdir -p /tmp/metrics && chown loyalty:loyalty /tmp/metrics
COPY --from=build /venv /venv
WORKDIR /app
# Source and migrations read-only (root-owned); the app reads alembic/ next to its packages.
COPY alembic.ini ./
COPY alembic alembic
COPY api api
COPY domain domain
COPY jobs jobs
COPY cli cli
COPY integrations integrations
ENV PATH=/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOYALTY_LOG_FORMAT=json \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics
USER loyalty:loyalty
EXPOSE 8000 9108
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=3)"]
# exec form: the process gets SIGTERM itself (compose adds `init: true` for zombie reaping as well).
CMD ["loyalty", "serve", "--no-jobs", "--host", "0.0.0.0", "--port", "8000"]
