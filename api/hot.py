"""The hot routes: an order, a refund, a redemption, the balance and the CRM lookup, each one statement.

They are ``async def`` on a psycopg 3 async pool in autocommit: no threadpool hop, no pool pre-ping, no
BEGIN/COMMIT round trips, and the API key checked from a per-worker cache instead of its own query. What each
request does is unchanged: the statements, their parameters and the answers' reading are the domain's own
(``domain.orders.service``, ``domain.points.service``, ``domain.crm.service``); the credential rules are
``api.deps``'s (``presented_credential``, ``check_key``, ``key_caller``, ``staff_caller``, ``token_caller``,
``admit``); the route-enumeration test reads ``.access`` off ``hot_allow`` as off ``allow``. Why and what it
bought: docs/hot-paths.md.

The key and staff-session caches are only trusted while this worker LISTENs on ``loyalty_credentials``:
migrations 1702 and 1706 NOTIFY that channel on every change to ``api_keys``, ``staff_sessions`` and
``staff_accounts``, and each notification empties the cache of what changed, so a revoked key, a logout or a
disabled account is refused by the next request. A staff token is still verified on every request and its
session judged live at the request's time (``check_staff_session``); only the row read is cached. Member
tokens (no hot route admits them) are checked as on every other route, on a sync session in a thread.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Generic, TypeVar

import fastapi.routing
import psycopg
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.applications import FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.exceptions import ResponseValidationError
from fastapi.routing import APIRoute
from fastapi.telemetry import get_telemetry_data
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.deps import CRM as CRM_ACCESS
from api.deps import (
    MEMBER_DATA,
    SALES,
    Caller,
    NowDep,
    admit,
    get_now,
    key_caller,
    presented_credential,
    staff_caller,
    token_caller,
)
from api.edge import DatabaseBusy
from api.encoding import json_response
from api.schemas.common import ERROR_RESPONSES, MemberId, OrderRef, from_row
from api.schemas.crm import CrmPicture
from api.schemas.points import BalanceOut, OrderIn, OrderOut, RedemptionIn, RedemptionOut, RefundIn, RefundOut
from domain.access.models import ApiKey
from domain.access.rules import RouteAccess, is_api_key, prefix_of
from domain.access.service import check_key
from domain.access.tokens import token_audience, verify_token
from domain.crm import service as crm
from domain.db import POOL_TIMEOUT_SECONDS, get_engine, limit_lock_waits
from domain.members import service as members
from domain.orders import service as orders
from domain.points import service as points
from domain.settings import get_settings
from domain.staff import service as staff
from domain.staff.models import StaffAccount, StaffSession

log = logging.getLogger(__name__)

T = TypeVar("T")

CREDENTIALS_CHANNEL = "loyalty_credentials"
"""Migration 1702's and 1706's triggers NOTIFY this channel, naming the table, when ``api_keys``,
``staff_sessions`` or ``staff_accounts`` changes."""
KEY_SQL = "SELECT * FROM api_keys WHERE prefix = %(prefix)s"
KEY_TTL_SECONDS = 60.0
"""A safety net only: a notification, not the time, is what ends a cached key or session."""
SESSION_TABLES = frozenset({"staff_sessions", "staff_accounts"})

V = TypeVar("V")


class CredentialCache(Generic[V]):
    """Credentials as read from the database, trusted only while the worker listens for changes (``live``).
    ``generation`` moves on every change, so a row read before a change and stored after it is not kept."""

    def __init__(self) -> None:
        self.live = False
        self.generation = 0
        self._entries: dict[str, tuple[V, float]] = {}

    def get(self, name: str) -> V | None:
        entry = self._entries.get(name) if self.live else None
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, name: str, value: V, *, generation: int) -> None:
        if self.live and generation == self.generation:
            self._entries[name] = (value, time.monotonic() + KEY_TTL_SECONDS)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()


class KeyCache(CredentialCache[ApiKey]):
    """API keys by prefix."""


class SessionCache(CredentialCache[tuple[StaffAccount, StaffSession]]):
    """Staff sessions and their accounts by session id, as ``domain.staff.service.read_staff_session`` read
    them: whether they are live at the request's time is decided per request (``check_staff_session``)."""


class HotDb:
    """Where a hot route's statement runs. ``PooledDb`` in production; ``SessionDb`` binds the hot routes to a
    test's rolled-back session (tests/conftest.py), as ``get_session``'s override does for the others."""

    keys: KeyCache | None = None
    sessions: SessionCache | None = None

    async def row(self, sql: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError

    async def sync(self, work: Callable[[Session], T]) -> T:
        """``work`` on a sync session in a thread (session tokens: the same code as every other route)."""
        raise NotImplementedError


class PooledDb(HotDb):
    """One worker's async pool (autocommit, no pre-ping) and its key cache, kept on ``app.state``."""

    def __init__(self) -> None:
        self.keys = KeyCache()
        self.sessions = SessionCache()
        self._pool: AsyncConnectionPool | None = None
        self._listener: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()

    @staticmethod
    def conninfo() -> str:
        # The process-wide engine's database (tests and the CLI point it elsewhere with ``set_engine``).
        return get_engine().url.set(drivername="postgresql").render_as_string(hide_password=False)

    @staticmethod
    def connect_kwargs() -> dict[str, Any]:
        settings = get_settings()
        # Autocommit: each hot statement is its own transaction, so there is no BEGIN or COMMIT round trip; the
        # lock timeout that ``limit_lock_waits`` sets per transaction elsewhere is the connection's own here.
        # psycopg prepares a statement from its fifth use; generic plans then skip planning on every call, which
        # for the lookup (thirty subqueries, each by the member's id) took 7 of its 8 ms in the database.
        return {"autocommit": True, "row_factory": dict_row, "application_name": "loyalty-hot",
                "connect_timeout": 5,
                "options": f"-c statement_timeout={settings.db_statement_timeout_ms} -c timezone=UTC "
                           f"-c lock_timeout={int(settings.lock_timeout_ms)} -c plan_cache_mode=force_generic_plan"}

    async def pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    settings = get_settings()
                    pool = AsyncConnectionPool(self.conninfo(), min_size=1, max_size=settings.db_pool_size,
                                               timeout=POOL_TIMEOUT_SECONDS, kwargs=self.connect_kwargs(),
                                               open=False, name="loyalty-hot")
                    await pool.open(wait=False)
                    self._listener = asyncio.create_task(self._listen(), name="loyalty-hot-keys")
                    self._pool = pool
        return self._pool

    async def _listen(self) -> None:
        """Empty the key cache on every change to ``api_keys``, the session cache on every change to staff
        sessions or accounts (both on anything else); trust them only while listening."""
        assert self.keys is not None and self.sessions is not None
        caches: tuple[CredentialCache[Any], ...] = (self.keys, self.sessions)
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.conninfo(), autocommit=True, connect_timeout=5,
                                                             application_name="loyalty-hot-listen")
                async with conn:
                    await conn.execute(f"LISTEN {CREDENTIALS_CHANNEL}")
                    for cache in caches:
                        cache.clear()
                        cache.live = True
                    async for notice in conn.notifies():
                        if notice.payload != "api_keys":
                            self.sessions.clear()
                        if notice.payload not in SESSION_TABLES:
                            self.keys.clear()
            except psycopg.Error as exc:
                log.warning("credential-cache listener lost its connection (%s); credentials are checked in the "
                            "database", exc.__class__.__name__)
            finally:
                for cache in caches:
                    cache.live = False
                    cache.clear()
            await asyncio.sleep(1)

    async def row(self, sql: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        pool = await self.pool()
        try:
            # getconn/putconn rather than ``pool.connection()``: its context manager (a generator) and the
            # connection's own (a commit, taking the connection's lock, that autocommit makes pointless) were a few
            # per cent of an order's API CPU. putconn rolls back or discards a connection left in a transaction.
            conn = await pool.getconn()
            try:
                query, names = positional(sql)
                cursor = psycopg.AsyncRawCursor(conn, row_factory=dict_row)
                await cursor.execute(query, [params[name] for name in names])
                return await cursor.fetchone()
            finally:
                await pool.putconn(conn)
        except PoolTimeout:
            raise DatabaseBusy from None
        except psycopg.Error as exc:
            # SQLAlchemy's wrapper of the same driver error, so api/errors.py answers it as on every route
            # (55P03 → 429 member_busy, a lost server → 503, a constraint → 409, a bad value → 422).
            raise sa.exc.DBAPIError.instance(sql, params, exc, psycopg.Error) from exc

    async def sync(self, work: Callable[[Session], T]) -> T:
        return await run_in_threadpool(_in_transaction, work)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()


_NAMED_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")


@lru_cache(maxsize=64)
def positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with its ``%(name)s`` placeholders numbered ``$1…$n`` (a name used twice keeps its number, ``%%``
    is ``%``), and the names in that order: what psycopg's own conversion gives, done once per statement.
    psycopg re-parses a query longer than 4,096 characters on every execution (it caches only shorter ones),
    and the lookup's is 5,700: a tenth of a millisecond per lookup."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "%"
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _NAMED_PLACEHOLDER.sub(number, sql), tuple(names)


def _in_transaction(work: Callable[[Session], T]) -> T:
    with Session(get_engine(), expire_on_commit=False) as session:
        limit_lock_waits(session, ms=get_settings().lock_timeout_ms)
        result = work(session)
        session.commit()
        return result


class SessionDb(HotDb):
    """The hot routes on a given sync session (each statement in a savepoint, as a failed request's
    rollback would leave the rest of the session's work). No key cache: the session's keys never commit."""

    def __init__(self, session: Session):
        self.session = session

    def _row(self, sql: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        self.session.flush()
        with self.session.begin_nested():
            found = self.session.connection().exec_driver_sql(sql, dict(params)).mappings().first()
        return dict(found) if found is not None else None

    async def row(self, sql: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        return await run_in_threadpool(self._row, sql, params)

    async def sync(self, work: Callable[[Session], T]) -> T:
        return await run_in_threadpool(work, self.session)


async def hot_database(request: Request) -> HotDb:
    """The worker's pooled database (tests override this dependency with a ``SessionDb``)."""
    state = request.app.state
    db: PooledDb | None = getattr(state, "hot_db", None)
    if db is None:
        db = state.hot_db = PooledDb()
    return db


async def close_hot_database(app: FastAPI) -> None:
    """At shutdown (api/main.py's lifespan): stop the listener, close the pool."""
    db: PooledDb | None = getattr(app.state, "hot_db", None)
    if db is not None:
        await db.close()


HotDep = Annotated[HotDb, Depends(hot_database)]


async def api_key(db: HotDb, presented: str) -> ApiKey:
    """The live key ``presented`` names: from the cache when the worker is listening, else one query."""
    prefix = prefix_of(presented)
    if prefix is None:
        return check_key(None, presented=presented)
    cache = db.keys
    key = cache.get(prefix) if cache is not None else None
    if key is None:
        generation = cache.generation if cache is not None else 0
        found = await db.row(KEY_SQL, {"prefix": prefix})
        key = ApiKey(**found) if found is not None else None
        if key is not None and cache is not None:
            cache.put(prefix, key, generation=generation)
    return check_key(key, presented=presented)


async def staff_session(db: HotDb, presented: str, now: datetime) -> Caller:
    """The staff member behind a session token: the token verified on every request, the session row and its
    account from the cache when the worker is listening (else one read), judged live at ``now`` by the same
    rule as on every route (``domain.staff.service.check_staff_session``)."""
    claims = verify_token(presented, audience=staff.STAFF_AUDIENCE, now=now)
    session_id: str = claims["sid"]
    cache = db.sessions
    found = cache.get(session_id) if cache is not None else None
    if found is None:
        generation = cache.generation if cache is not None else 0
        found = await db.sync(lambda session: staff.read_staff_session(session, session_id=session_id))
        if found is not None and cache is not None:
            cache.put(session_id, found, generation=generation)
    account, checked = staff.check_staff_session(claims, found, now=now)
    return staff_caller(account, session_id=checked)


@dataclass(frozen=True)
class Hot:
    """One hot request's database, admitted caller and clock, from ONE dependency: FastAPI's dependency solving
    costs per dependency, and it was a quarter of an order's CPU with each of them its own."""

    db: HotDb
    caller: Caller
    now: datetime


def hot_allow(access: RouteAccess) -> Callable[..., Any]:
    """``api.deps.allow`` for the hot routes: the same credentials and the same admission, without a sync
    session. Carries ``.access`` like ``allow``'s dependency (the route-enumeration test reads it), and
    ``.resolve``, the same dependency with its own dependencies solved by hand (``HotRoute``)."""

    async def hot(request: Request, db: HotDep, now: NowDep,
                  authorization: Annotated[str | None, Header()] = None) -> Hot:
        presented = presented_credential(authorization)
        if is_api_key(presented):
            caller = key_caller(await api_key(db, presented))
        elif token_audience(presented) == staff.STAFF_AUDIENCE:
            caller = await staff_session(db, presented, now)
        else:
            caller = await db.sync(lambda session: token_caller(session, presented=presented, now=now))
        request.state.caller = caller
        return Hot(db, admit(caller, access), now)

    async def resolve(request: Request, overrides: Mapping[Any, Any]) -> Hot | None:
        """``hot`` as FastAPI would call it: its database and clock through the app's overrides (a test's
        session and clock), the ``Authorization`` header as its ``Header()`` parameter reads it. None when an
        override is not a plain callable without parameters: FastAPI's own solving then handles the request."""
        db = await _solved(hot_database, request, overrides)
        now = await _solved(get_now, request, overrides)
        if db is _UNSOLVED or now is _UNSOLVED:
            return None
        return await hot(request, db, now, request.headers.get("authorization"))

    hot.access = access  # type: ignore[attr-defined]
    hot.resolve = resolve  # type: ignore[attr-defined]
    return hot


_UNSOLVED: Any = object()


async def _solved(dependency: Callable[..., Any], request: Request, overrides: Mapping[Any, Any]) -> Any:
    call = overrides.get(dependency, dependency)
    if call is hot_database:
        return await hot_database(request)
    if call is get_now:
        return await get_now()
    if not _plain_without_parameters(call):
        return _UNSOLVED
    result = call()
    return await result if inspect.isawaitable(result) else result


@lru_cache(maxsize=64)
def _plain_without_parameters(call: Callable[..., Any]) -> bool:
    return not (inspect.isgeneratorfunction(call) or inspect.isasyncgenfunction(call)
                or inspect.signature(call).parameters)


class HotRoute(APIRoute):
    """A hot route whose ordinary request skips FastAPI's generic request handling: FastAPI re-derives, per
    request and per dependency, what the route's signature already fixed (cache keys, whether a parameter is a
    sequence, the content type parsed as a MIME header, the endpoint's context for error messages), and that
    was about a quarter of an order's API CPU (docs/hot-paths.md, issue #17).

    The short way does what FastAPI does, with FastAPI's own pieces, for a request that needs nothing else: a JSON
    body (``Content-Type: application/json``, with parameters or not) that parses, path parameters and body that
    validate (the route's own ``ModelField``s), the hot dependency (``hot_allow``'s ``resolve``), the endpoint,
    and the answer validated and serialised by the route's response field, its status the route's or the one the
    endpoint set. Anything else — a body that does not parse or validate, another content type, an override with
    parameters, OpenTelemetry tracing this request — goes to FastAPI's handler before anything was done (only the
    body was read, and Starlette keeps it for the second reading), so every refusal and its order (401/403 before
    422, 422 for bad JSON first) is FastAPI's own. Routes of another shape (query, header or cookie parameters:
    the lookup) always take FastAPI's handler."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()
        route = _effective(self)
        dependant = route.dependant
        hot_call = dependant.dependencies[0].call if len(dependant.dependencies) == 1 else None
        resolve = getattr(hot_call, "resolve", None)
        body_field = route.body_field
        response_field = route.response_field
        if (resolve is None or hot_call is None or dependant.dependencies[0].name is None
                or dependant.query_params or dependant.header_params or dependant.cookie_params
                or len(dependant.body_params) > 1 or route._embed_body_fields or response_field is None
                or not isinstance(route.response_class, DefaultPlaceholder) or dependant.request_param_name
                or dependant.background_tasks_param_name or dependant.security_scopes_param_name
                or dependant.http_connection_param_name or not inspect.iscoroutinefunction(dependant.call)):
            return standard
        endpoint = dependant.call
        assert endpoint is not None
        hot_name = dependant.dependencies[0].name
        path_fields = [(field.name, field.alias, field) for field in dependant.path_params]
        response_name = dependant.response_param_name
        provider = route.dependency_overrides_provider
        dump = {"include": route.response_model_include, "exclude": route.response_model_exclude,
                "by_alias": route.response_model_by_alias, "exclude_unset": route.response_model_exclude_unset,
                "exclude_defaults": route.response_model_exclude_defaults,
                "exclude_none": route.response_model_exclude_none}

        async def handler(request: Request) -> Response:
            overrides = getattr(provider, "dependency_overrides", None) or {}
            if hot_call in overrides or get_telemetry_data() is not None:
                return await standard(request)
            values: dict[str, Any] = {}
            if body_field is not None:
                content_type = request.headers.get("content-type", "")
                if content_type != "application/json" and not content_type.startswith("application/json;"):
                    return await standard(request)
                try:
                    received = json.loads(await request.body())
                except ValueError:
                    return await standard(request)
                body, errors = body_field.validate(received, {}, loc=("body",))
                if errors:
                    return await standard(request)
                values[body_field.name] = body
            for name, alias, field in path_fields:
                value, errors = field.validate(request.path_params.get(alias), {}, loc=("path", alias))
                if errors:
                    return await standard(request)
                values[name] = value
            hot = await resolve(request, overrides)
            if hot is None:
                return await standard(request)
            values[hot_name] = hot
            sub_response = Response()
            del sub_response.headers["content-length"]
            sub_response.status_code = None  # type: ignore[assignment]
            if response_name:
                values[response_name] = sub_response
            answer = await endpoint(**values)
            if isinstance(answer, Response):
                return answer
            checked, errors = response_field.validate(answer, {}, loc=("response",))
            if errors:
                raise ResponseValidationError(errors=errors, body=answer)
            response = Response(response_field.serialize_json(checked, **dump), media_type="application/json",
                                status_code=sub_response.status_code or route.status_code or 200)
            response.headers.raw.extend(sub_response.headers.raw)
            return response

        return handler


def _effective(route: APIRoute) -> Any:
    """The route as included in the app (FastAPI builds the handler once per inclusion, with the including
    routers' settings), as ``APIRoute.get_route_handler`` finds it."""
    current = getattr(fastapi.routing, "_effective_route_context_var", None)
    context = current.get() if current is not None else None
    return context if context is not None and context.original_route is route else route


MemberDataRequest = Annotated[Hot, Depends(hot_allow(MEMBER_DATA))]
SalesRequest = Annotated[Hot, Depends(hot_allow(SALES))]
CrmRequest = Annotated[Hot, Depends(hot_allow(CRM_ACCESS))]

router = APIRouter(responses=ERROR_RESPONSES, route_class=HotRoute)


@router.post("/v1/orders", response_model=OrderOut, status_code=201, tags=["points"],
             summary="Record a purchase (idempotent by order_id: a replay answers 200 with replayed=true)")
async def record_order(body: OrderIn, response: Response, hot: SalesRequest) -> OrderOut:
    new = orders.NewOrder(order_id=body.order_id, member_id=body.member_id, amount_fen=body.amount_fen,
                          channel=body.channel, occurred_at=body.occurred_at, items=body.items,
                          sent_by=hot.caller.namespace)
    row = await hot.db.row(orders.RECORD_ORDER_SQL, orders.order_parameters(new, now=hot.now))
    assert row is not None  # the function answers one row, whatever the outcome
    order, replayed = orders.order_outcome(row, new=new)
    if replayed:
        response.status_code = 200
    return from_row(OrderOut, order, replayed=replayed)


@router.post("/v1/orders/{order_id}/refunds", response_model=RefundOut, status_code=201, tags=["points"],
             summary="Refund part or all of an order this caller recorded (idempotent by refund_id, per caller)")
async def refund_order(order_id: OrderRef, body: RefundIn, response: Response, hot: SalesRequest) -> RefundOut:
    params = orders.refund_parameters(order_id=order_id, refund_id=body.refund_id, amount_fen=body.amount_fen,
                                      occurred_at=body.occurred_at or hot.now, now=hot.now,
                                      sent_by=hot.caller.namespace)
    try:
        row = await hot.db.row(orders.RECORD_REFUND_SQL, params)
    except sa.exc.IntegrityError as exc:
        raise orders.refund_clash(body.refund_id) from exc
    assert row is not None  # the function answers one row, whatever the outcome
    refund, replayed = orders.refund_outcome(row, order_id=order_id, refund_id=body.refund_id,
                                             amount_fen=body.amount_fen)
    if replayed:
        response.status_code = 200
    return from_row(RefundOut, refund, order_id=order_id, replayed=replayed)


@router.post("/v1/members/{member_id}/redemptions", response_model=RedemptionOut, status_code=201, tags=["points"],
             summary="Spend points (idempotent by redemption_id, per caller; 422 insufficient_points when short)")
async def redeem(member_id: MemberId, body: RedemptionIn, response: Response, hot: MemberDataRequest) -> RedemptionOut:
    params = points.redemption_parameters(member_id=member_id, redemption_id=body.redemption_id, points=body.points,
                                          reason=body.reason, now=hot.now, sent_by=hot.caller.namespace)
    try:
        row = await hot.db.row(points.REDEEM_SQL, params)
    except sa.exc.IntegrityError as exc:
        raise points.redemption_clash(body.redemption_id) from exc
    assert row is not None
    redemption, replayed = points.redemption_outcome(row, member_id=member_id, redemption_id=body.redemption_id,
                                                     points=body.points)
    if replayed:
        response.status_code = 200
    return from_row(RedemptionOut, redemption, replayed=replayed)


@router.get("/v1/members/{member_id}/points", response_model=BalanceOut, tags=["points"], summary="Points balance")
async def balance(member_id: MemberId, hot: MemberDataRequest) -> BalanceOut:
    row = await hot.db.row(points.BALANCE_SQL, points.balance_parameters(member_id=member_id, now=hot.now))
    return BalanceOut(**asdict(points.balance_outcome(row, member_id=member_id)))


@router.get("/v1/crm/members/lookup", tags=["crm"], response_model=CrmPicture,
            summary="The member's whole picture in one answer (access-logged)")
async def crm_lookup(hot: CrmRequest,
                     phone: Annotated[str | None, Query(max_length=32)] = None,
                     openid: Annotated[str | None, Query(max_length=64)] = None,
                     code: Annotated[str | None, Query(max_length=40)] = None,
                     reason: Annotated[str | None, Header(alias="X-Access-Reason", max_length=200)] = None
                     ) -> Response:
    column, key = members.identity_key(phone=phone, openid=openid, code=code)
    caller, now = hot.caller, hot.now
    access = crm.AccessRecord(api_key_name=caller.key_name, agent_id=caller.agent_id, staff_id=caller.staff_id,
                              reason=reason or "call")
    sql, params = crm.lookup_statement(column=column, key=key, access=access, now=now)
    row = await hot.db.row(sql, params)
    picture = crm.lookup_outcome(row, unmasked=caller.sees_contact_details, now=now,
                                 details={k: v for k, v in (("phone", phone), ("openid", openid), ("code", code))
                                          if v})
    # As composed, encoded in one pass: validating thirty fields against CrmPicture and walking the answer with
    # jsonable_encoder on every call cost the hot path; the tests validate real answers against the model and
    # compare the encoding with jsonable_encoder's (tests/api/test_hot_paths.py).
    return json_response(picture)

