"""Pure rules of the WeChat callback: signatures, freshness, dedupe keys, the service window."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

SERVICE_WINDOW_AFTER_MESSAGE = timedelta(hours=48)


def signature(*parts: str) -> str:
    """WeChat's signature: SHA-1 of the parts sorted and joined (token, timestamp, nonce[, encrypted body])."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324 - WeChat's protocol


def signature_valid(*, token: str, timestamp: str, nonce: str, presented: str) -> bool:
    # Bytes, not str: compare_digest refuses non-ASCII strings, and a forged signature may be anything.
    return hmac.compare_digest(signature(token, timestamp, nonce).encode(), (presented or "").encode())


def is_stale(*, timestamp: str, now: datetime, max_skew_seconds: int) -> bool:
    """A callback whose timestamp is too far from our clock is refused (a replayed capture)."""
    try:
        sent = int(timestamp)
    except ValueError:
        return True
    return abs(now.timestamp() - sent) > max_skew_seconds


def dedupe_key(*, msg_id: int | None, sender: str, create_time: int, event: str | None) -> str:
    """Messages carry a MsgId; events do not (0), so sender + CreateTime (+ event) identifies them."""
    if msg_id:
        return f"msg:{msg_id}"
    return f"evt:{sender}:{create_time}:{event or ''}"[:120]


PUBLISHED_TOKENS = frozenset({"", "loyalty-dev-token", "QDG6eK", "token", "wechat", "weixin"})
"""Callback tokens anyone can read: unset, this project's development default, WeChat's sample-code token and
the usual placeholders. Whoever knows the token can sign callbacks."""


def configuration_problem(*, app_id: str, token: str, encoding_aes_key: str) -> str | None:
    """Why the service must not start with this WeChat configuration, or None. WeChat counts as configured
    once an app id or an EncodingAESKey is set; unconfigured (local) mode may keep the development token."""
    if not (app_id or encoding_aes_key):
        return None
    if token.strip() in PUBLISHED_TOKENS:
        return ("WeChat is configured but LOYALTY_WECHAT_TOKEN is unset or a published default: anyone could "
                "sign callbacks. Set the token from the official account's console.")
    if encoding_aes_key and len(encoding_aes_key) != 43:
        return "LOYALTY_WECHAT_ENCODING_AES_KEY must be the 43 characters WeChat issues"
    return None


def whole_number(value: object) -> int | None:
    """A callback field that must be an integer (CreateTime, MsgId), or None when it is not one."""
    text = str(value if value is not None else "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else None


def in_service_window(*, last_interaction_at: datetime | None, now: datetime) -> bool:
    """Customer-service messages may go out within 48 h of the member's last message to the account."""
    return last_interaction_at is not None and now - last_interaction_at < SERVICE_WINDOW_AFTER_MESSAGE


def new_phone_code() -> str:
    """A six-digit SMS code for phone binding."""
    return f"{secrets.randbelow(1_000_000):06d}"


def phone_code_digest(*, state: str, phone: str, code: str) -> str:
    """What is stored instead of the code: bound to the binding attempt and the phone it was sent to."""
    return hashlib.sha256(f"{state}:{phone}:{code.strip()}".encode()).hexdigest()


def phone_code_matches(*, stored_digest: str, state: str, phone: str, code: str) -> bool:
    return hmac.compare_digest(stored_digest.encode(), phone_code_digest(state=state, phone=phone, code=code).encode())


def subscription_items(raw: object) -> list[dict[str, str]]:
    """The ``<List>`` entries of a subscribe-message event: one element or several, as XML gives them."""
    if isinstance(raw, dict):
        raw = raw.get("List")
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        return []
    return [{str(k): str(v) for k, v in item.items()} for item in raw if isinstance(item, dict)]
