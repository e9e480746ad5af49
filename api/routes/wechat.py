"""WeChat's callback: URL verification, plaintext and AES messages, each handled once.

Authenticated by WeChat's signature (not API keys). Slow work (user info, template sends) is left to the
outbox and jobs, so the answer comes well within WeChat's 5-second limit.
"""

from __future__ import annotations

from typing import Annotated, Any
from xml.parsers.expat import ExpatError

from fastapi import APIRouter, Query, Request, Response
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import TextReply

from api.deps import NowDep, SessionDep
from api.errors import error_response
from api.schemas.common import ERROR_RESPONSES
from domain.settings import get_settings
from domain.wechat import service as wechat
from domain.wechat.rules import is_stale, signature_valid

router = APIRouter(prefix="/wechat", tags=["wechat"], responses=ERROR_RESPONSES)
PLAIN_OR_XML: dict[int | str, dict[str, Any]] = {
    200: {"description": "echostr, 'success', or a reply", "content": {"text/plain": {}, "application/xml": {}}}}

Param = Annotated[str, Query(max_length=128)]


def _refusal(now_ts: float, signature: str, timestamp: str, nonce: str) -> Response | None:
    settings = get_settings()
    if not signature_valid(token=settings.wechat_token, timestamp=timestamp, nonce=nonce, presented=signature):
        return error_response(403, "invalid_signature", "the request is not signed by WeChat")
    from datetime import UTC, datetime

    if is_stale(timestamp=timestamp, now=datetime.fromtimestamp(now_ts, UTC),
                max_skew_seconds=settings.wechat_max_clock_skew_seconds):
        return error_response(403, "stale_request", "the request's timestamp is too old or in the future")
    return None


@router.get("/callback", response_class=Response, responses=PLAIN_OR_XML,
            summary="WeChat's URL verification: echo echostr when the signature is WeChat's")
def verify(now: NowDep, signature: Param = "", timestamp: Param = "", nonce: Param = "",
           echostr: Annotated[str, Query(max_length=512)] = "") -> Response:
    refused = _refusal(now.timestamp(), signature, timestamp, nonce)
    return refused or Response(echostr, media_type="text/plain")


def _cryptos() -> list[WeChatCrypto]:
    settings = get_settings()
    keys = [k for k in (settings.wechat_encoding_aes_key, settings.wechat_previous_encoding_aes_key) if k]
    return [WeChatCrypto(settings.wechat_token, key, settings.wechat_app_id) for key in keys]


@router.post("/callback", response_class=Response, responses=PLAIN_OR_XML,
             summary="Messages and events from WeChat (plaintext or AES), each processed once")
async def callback(request: Request, session: SessionDep, now: NowDep, signature: Param = "", timestamp: Param = "",
                   nonce: Param = "", encrypt_type: Param = "raw", msg_signature: Param = "") -> Response:
    refused = _refusal(now.timestamp(), signature, timestamp, nonce)
    if refused:
        return refused
    body = (await request.body()).decode("utf-8", errors="replace")
    crypto = None
    if encrypt_type == "aes":
        forged = False
        for candidate in _cryptos():  # the current key, then the previous one during a rotation
            try:
                body, crypto = candidate.decrypt_message(body, msg_signature, timestamp, nonce), candidate
                break
            except (InvalidSignatureException, InvalidAppIdException):
                forged = True
            except (ValueError, ExpatError, KeyError, TypeError, UnicodeDecodeError):
                continue  # a wrong key decrypts to garbage: try the next one
        if crypto is None:
            if forged:
                return error_response(403, "invalid_signature", "the message signature or key is not WeChat's")
            return error_response(400, "malformed_message", "the encrypted message cannot be read")
    try:
        message = parse_message(body)
    except (ValueError, ExpatError, KeyError, TypeError, AttributeError):
        return error_response(400, "malformed_message", "the message is not WeChat XML")
    raw = getattr(message, "_data", {})
    inbound = wechat.Inbound(
        msg_type=message.type, event=getattr(message, "event", None), openid=str(message.source),
        create_time=int(raw.get("CreateTime", 0) or 0), msg_id=int(message.id or 0) or None,
        scene=getattr(message, "scene_id", None) or None, key=getattr(message, "key", None),
        content=getattr(message, "content", None), status=getattr(message, "status", None))
    from starlette.concurrency import run_in_threadpool

    reply_text = await run_in_threadpool(wechat.handle_callback, session, inbound=inbound, now=now)
    if reply_text is None:
        return Response("success", media_type="text/plain")
    xml = TextReply(content=reply_text, message=message).render()
    if crypto is not None:
        xml = crypto.encrypt_message(xml, nonce, timestamp)
    return Response(xml, media_type="application/xml")
