"""CSV exports streamed by PostgreSQL itself (``COPY (query) TO STDOUT``), never built in memory.

The query is compiled by SQLAlchemy, bound on the client by psycopg (COPY takes no server-side parameters) and
run on a connection of its own in a read-only REPEATABLE READ transaction, so the file is one consistent
snapshot however long the download takes. Rows leave as PostgreSQL sends them, gathered into blocks of about
64 KB: memory stays flat whatever the size of the export.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

BLOCK_BYTES = 64 * 1024
UTF8_BOM = "\ufeff".encode()
"""Spreadsheets on Chinese-locale Windows read a CSV without it as GBK and garble every name."""
EXPORT_STATEMENT_TIMEOUT = "15min"
"""A slow client keeps the COPY statement open; the API's usual 30 s would cut a large download short."""


def compile_copy(engine: Engine, query: sa.Select[Any]) -> tuple[str, dict[str, Any]]:
    """``COPY (query) TO STDOUT`` as CSV with a header, with psycopg-style parameters."""
    compiled = query.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    return f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv, HEADER true)", dict(compiled.params)


def count_rows(engine: Engine, query: sa.Select[Any]) -> int:
    """How many rows an export will have (for a progress bar)."""
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0)


def stream_csv(engine: Engine, query: sa.Select[Any], *, bom: bool = True) -> Iterator[bytes]:
    """The CSV of ``query``, block by block, straight from PostgreSQL."""
    statement, params = compile_copy(engine, query)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = '{EXPORT_STATEMENT_TIMEOUT}'")
            raw = conn.connection.driver_connection
            assert raw is not None
            block = bytearray(UTF8_BOM if bom else b"")
            with raw.cursor() as cursor, cursor.copy(statement, params) as copy:
                for data in copy:
                    block += data
                    if len(block) >= BLOCK_BYTES:
                        yield bytes(block)
                        block.clear()
            if block:
                yield bytes(block)
