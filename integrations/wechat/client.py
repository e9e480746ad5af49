"""wechatpy's client with a PostgreSQL-shared token, WeChat's stable-token endpoint and bounded retries.

Why not wechatpy's defaults: its storage trusts any stored token (expiry must be enforced by the storage),
``auto_retry`` retries invalid-token errors without bound, it has no timeout by default, and a plain
``/cgi-bin/token`` call invalidates the token every other process holds.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from domain.telemetry import WECHAT_API_ERRORS

TOKEN_ERRORS = {40001, 40014, 42001}
MIN_TTL = timedelta(minutes=5)
"""A stored token is used only while it has this long to live; after that it is refreshed."""


UPSERT_TOKEN = sa.text(
    "INSERT INTO wechat_access_tokens (appid, token, expires_at, refreshed_at) VALUES (:a, :v, :e, now()) "
    "ON CONFLICT (appid) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at, "
    "refreshed_at = EXCLUDED.refreshed_at")


class PostgresTokenStorage:
    """wechatpy's storage interface (get/set/delete), backed by ``wechat_access_tokens``."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def get(self, key: str, default: Any = None) -> Any:
        appid = key.removesuffix("_access_token")
        with self.engine.connect() as conn:
            token = conn.scalar(sa.text("SELECT token FROM wechat_access_tokens WHERE appid = :a AND expires_at > :t"),
                                {"a": appid, "t": datetime.now(UTC) + MIN_TTL})
        return token or default

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        appid = key.removesuffix("_access_token")
        with self.engine.begin() as conn:
            expires_at = datetime.now(UTC) + timedelta(seconds=ttl or 7200)
            conn.execute(UPSERT_TOKEN, {"a": appid, "v": value, "e": expires_at})

    def delete(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM wechat_access_tokens WHERE appid = :a"),
                         {"a": key.removesuffix("_access_token")})

    def discard_if(self, appid: str, token: str) -> None:
        """Drop the stored token only if it is the one that failed: another process may have refreshed it."""
        with self.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM wechat_access_tokens WHERE appid = :a AND token = :t"),
                         {"a": appid, "t": token})


class LoyaltyWeChatClient(WeChatClient):  # type: ignore[misc]
    def __init__(self, appid: str, secret: str, *, engine: Engine, api_base_url: str, timeout: float):
        self.API_BASE_URL = api_base_url
        self._engine = engine
        self.storage = PostgresTokenStorage(engine)
        super().__init__(appid, secret, session=self.storage, timeout=timeout, auto_retry=False)

    def fetch_access_token(self) -> dict[str, Any]:
        """One process refreshes at a time (advisory lock), re-checking first: a token another process just
        fetched is used, not replaced. WeChat's stable token is the same for every caller until it expires."""
        with self._engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                         {"k": f"wechat-token:{self.appid}"})
            existing = conn.scalar(sa.text(
                "SELECT token FROM wechat_access_tokens WHERE appid = :a AND expires_at > :t"),
                {"a": self.appid, "t": datetime.now(UTC) + MIN_TTL})
            if existing:
                self.expires_at = int(time.time()) + int(MIN_TTL.total_seconds())
                return {"access_token": existing}
            response = requests.post(f"{self.API_BASE_URL}stable_token", json={
                "grant_type": "client_credential", "appid": self.appid, "secret": self.secret,
                "force_refresh": False}, timeout=self.timeout)
            result = response.json()
            if result.get("errcode"):
                WECHAT_API_ERRORS.labels(str(result["errcode"])).inc()
                raise WeChatClientException(result["errcode"], result.get("errmsg"), client=self)
            expires_in = int(result.get("expires_in", 7200))
            conn.execute(UPSERT_TOKEN, {"a": self.appid, "v": result["access_token"],
                                        "e": datetime.now(UTC) + timedelta(seconds=expires_in)})
        self.expires_at = int(time.time()) + expires_in
        return dict(result)

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        """Every API call, counted by WeChat's errcode when it fails (``http`` for an HTTP error status,
        ``network`` when no answer came)."""
        try:
            return super()._request(method, url_or_endpoint, **kwargs)
        except WeChatClientException as exc:
            WECHAT_API_ERRORS.labels(str(exc.errcode) if exc.errcode is not None else "http").inc()
            raise
        except requests.RequestException:
            WECHAT_API_ERRORS.labels("network").inc()
            raise

    def call_with_one_refresh(self, method: str, endpoint: str, *, params: dict[str, str] | None = None,
                              **kwargs: Any) -> Any:
        """Call the API; on an invalid or expired token, refresh once and retry once — never more."""
        token = self.access_token
        try:
            return self._request(method, endpoint, params={**(params or {}), "access_token": token}, **kwargs)
        except WeChatClientException as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
            self.storage.discard_if(self.appid, token)
            self.expires_at = 0  # falsy: use whatever token the storage holds now
            return self._request(method, endpoint, params={**(params or {}), "access_token": self.access_token},
                                 **kwargs)
