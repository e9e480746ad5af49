"""WeChat's callback: URL verification, plaintext and AES messages, each handled once.

Authenticated by WeChat's signature (not API keys). Slow work (user info, template sends) is left to the
outbox and jobs, so the answer comes well within WeChat's 5-second limit.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated, Any
from xml.parsers.expat import ExpatError

import requests
from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from sqlmodel import Session
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException, WeChatOAuthException
from wechatpy.replies import TextReply

from api import member_pages
from api.deps import NowDep, SessionDep
from api.errors import error_response, status_for
from api.phone_codes import send_phone_code
from api.routes.me import MemberSessionOut, session_out
from api.schemas.common import ERROR_RESPONSES, StrictModel
from domain.errors import Conflict, DomainError, Forbidden
from domain.member_sessions import service as member_sessions
from domain.member_sessions.rules import Proof
from domain.members.models import Member
from domain.members.rules import mask_phone
from domain.settings import get_settings
from domain.wechat import service as wechat
from domain.wechat.rules import is_stale, signature_valid, subscription_items, whole_number
from integrations.wechat.oauth import LoyaltyWeChatOAuth

router = APIRouter(prefix="/wechat", tags=["wechat"], responses=ERROR_RESPONSES)
PLAIN_OR_XML: dict[int | str, dict[str, Any]] = {
    200: {"description": "echostr, 'success', or a reply", "content": {"text/plain": {}, "application/xml": {}}}}

Param = Annotated[str, Query(max_length=128)]
SUBSCRIPTION_EVENT_LISTS = ("SubscribeMsgPopupEvent", "SubscribeMsgChangeEvent", "SubscribeMsgSentEvent")


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
    settings = get_settings()
    if settings.wechat_encoding_aes_key and encrypt_type != "aes":
        # A plaintext callback's body is not covered by the signature (only token, timestamp and nonce are):
        # once safe mode is configured, a plaintext body is someone replaying a signature over their own body.
        return error_response(403, "plaintext_refused", "this account takes only encrypted (safe-mode) callbacks")
    raw_body = bytearray()
    async for chunk in request.stream():
        raw_body += chunk
        if len(raw_body) > settings.wechat_max_body_bytes:
            return error_response(413, "payload_too_large", "a WeChat callback is never this large",
                                  {"max_body_bytes": settings.wechat_max_body_bytes})
    if not raw_body.strip():
        return error_response(400, "malformed_message", "the message is empty")
    body = raw_body.decode("utf-8", errors="replace")
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
    # Messages spell it MsgId, template delivery reports MsgID.
    create_time = whole_number(raw.get("CreateTime", 0) or 0)
    msg_id = whole_number(raw.get("MsgId") or raw.get("MsgID") or 0)
    if create_time is None or msg_id is None or not str(message.source or "").strip():
        return error_response(400, "malformed_message", "CreateTime and MsgId must be numbers, FromUserName set")
    # Subscribe-message events are unknown to wechatpy: their type, event and list come from the raw XML.
    subscription = next((raw[k] for k in SUBSCRIPTION_EVENT_LISTS if k in raw), None)
    inbound = wechat.Inbound(
        msg_type=str(raw.get("MsgType") or message.type).lower(),
        event=getattr(message, "event", None) or raw.get("Event"), openid=str(message.source),
        create_time=create_time, msg_id=msg_id or None,
        scene=getattr(message, "scene_id", None) or None, key=getattr(message, "key", None),
        content=getattr(message, "content", None), status=getattr(message, "status", None),
        items=tuple(subscription_items(subscription)))
    from starlette.concurrency import run_in_threadpool

    reply_text = await run_in_threadpool(wechat.handle_callback, session, inbound=inbound, now=now)
    if reply_text is None:
        return Response("success", media_type="text/plain")
    xml = TextReply(content=reply_text, message=message).render()
    if crypto is not None:
        xml = crypto.encrypt_message(xml, nonce, timestamp)
    return Response(xml, media_type="application/xml")


# --- phone binding: WeChat OAuth web flow ----------------------------------------------------------

class CodeIn(StrictModel):
    state: str = Field(min_length=8, max_length=64)
    phone: str = Field(min_length=5, max_length=32)


class BindIn(CodeIn):
    code: str = Field(min_length=4, max_length=8, pattern=r"^\s*\d+\s*$")


def _oauth(state: str) -> LoyaltyWeChatOAuth:
    settings = get_settings()
    if not (settings.wechat_app_id and settings.wechat_app_secret):
        raise Conflict("WeChat is not configured (LOYALTY_WECHAT_APP_ID / _APP_SECRET)", code="wechat_not_configured")
    return LoyaltyWeChatOAuth(settings.wechat_app_id, settings.wechat_app_secret,
                              f"{settings.wechat_public_base_url}/wechat/oauth/callback", state,
                              api_base_url=settings.wechat_oauth_api_base_url,
                              timeout=settings.wechat_timeout_seconds)


BIND_COOKIE = "loyalty_wechat_binding"
"""Holds the binding's ``state`` in the browser that started it. The state itself travels through WeChat's
redirect and the page's URLs; the cookie cannot be planted cross-site, so a state lured into another
person's browser (or copied from a shared link) is refused there."""


def _same_browser(request: Request, state: str) -> None:
    presented = request.cookies.get(BIND_COOKIE, "")
    if not hmac.compare_digest(presented.encode(), state.encode()):
        raise Forbidden("this binding was started in another browser; start again", code="state_not_this_browser")


@router.get("/oauth/start", status_code=302, response_class=Response,
            summary="Start phone binding: redirect to WeChat's authorisation page with a single-use state")
def oauth_start(session: SessionDep, now: NowDep) -> Response:
    state = wechat.start_binding(session, now=now)
    settings = get_settings()
    response = RedirectResponse(_oauth(state).authorize_url, status_code=302)
    # Lax: WeChat's redirect back is a top-level GET, which carries the cookie; cross-site POSTs do not.
    response.set_cookie(BIND_COOKIE, state, max_age=settings.wechat_oauth_state_minutes * 60, path="/wechat/oauth",
                        httponly=True, samesite="lax",
                        secure=settings.wechat_public_base_url.startswith("https://"))
    return response


@router.get("/oauth/callback", response_class=RedirectResponse, status_code=303,
            summary="WeChat redirects here with a code: the openid is proved for the state, and the browser goes on "
                    "to the binding page")
def oauth_callback(request: Request, session: SessionDep, now: NowDep,
                   code: Annotated[str, Query(min_length=1, max_length=128)],
                   state: Annotated[str, Query(min_length=8, max_length=64)]) -> Any:
    # The code exchange is a network call: done before the request's transaction touches the database.
    client = _oauth(state)
    _same_browser(request, state)
    try:
        identity = client.fetch_access_token(code)
    except WeChatOAuthException as exc:
        if exc.errcode is None:  # an HTTP error status, not a WeChat answer
            return error_response(503, "wechat_unavailable", "WeChat did not answer; try again")
        raise Forbidden("WeChat refused the authorisation code", code="oauth_code_refused",
                        details={"errcode": exc.errcode}) from exc
    except requests.RequestException:
        return error_response(503, "wechat_unavailable", "WeChat did not answer; try again")
    wechat.verify_oauth(session, state=state, openid=str(identity["openid"]), unionid=identity.get("unionid"),
                        now=now)
    # On to the page (303: a reload of the page never replays WeChat's single-use code). A front end of its
    # own may instead call POST /wechat/oauth/code and /wechat/oauth/bind with the state.
    return RedirectResponse("/wechat/oauth/page", status_code=303)


class CodeSentOut(BaseModel):
    state: str
    sent_to: str | None = Field(description="The phone the code went to, masked")
    expires_in_seconds: int


class BoundOut(BaseModel):
    member_id: int
    member_code: str
    status: str
    session: MemberSessionOut


@router.post("/oauth/code", response_model=CodeSentOut,
             summary="Send an SMS code to the phone the person typed (after the OAuth callback)")
def oauth_code(request: Request, body: CodeIn, session: SessionDep, now: NowDep) -> Any:
    _same_browser(request, body.state)
    phone, failure = _send_code(session, state=body.state, phone=body.phone, now=now)
    settings = get_settings()
    if failure is not None:
        return error_response(503, "sms_unavailable", "the SMS code could not be sent; try again",
                              {"reason": failure})
    return CodeSentOut(state=body.state, sent_to=mask_phone(phone),
                       expires_in_seconds=settings.wechat_bind_code_minutes * 60)


def _send_code(session: Session, *, state: str, phone: str, now: datetime) -> tuple[str, str | None]:
    """Issue and send a binding code: (the normalised phone, the gateway's refusal or None)."""
    phone, code = wechat.issue_phone_code(session, state=state, phone=phone, now=now)
    # Sent while the state row is locked and before the commit: a code the gateway refused leaves no trace,
    # so the person can ask again at once.
    failure = send_phone_code(phone=phone, code=code, minutes=get_settings().wechat_bind_code_minutes,
                              idempotency_key=f"wechat-bind:{state}:{phone}:{code}")
    if failure is not None:
        session.rollback()
    return phone, failure


def _bind(session: Session, *, state: str, phone: str, code: str,
          now: datetime) -> tuple[Member, member_sessions.IssuedMemberSession]:
    """Bind the phone proved by its code, and sign the member in: the binding ends in a member session."""
    try:
        member = wechat.bind_phone(session, state=state, phone=phone, code=code, now=now)
    except Forbidden as exc:
        if exc.code == "wrong_code":
            session.commit()  # the wrong attempt counts even though the request is refused
        raise
    assert member.id is not None
    return member, member_sessions.start_member_session(session, member_id=member.id, proof=Proof.WECHAT, now=now)


@router.post("/oauth/bind", response_model=BoundOut,
             summary="Confirm the phone with its SMS code: the WeChat identity joins that member, "
                     "who is signed in (a member session)")
def oauth_bind(request: Request, body: BindIn, session: SessionDep, now: NowDep) -> BoundOut:
    _same_browser(request, body.state)
    member, issued = _bind(session, state=body.state, phone=body.phone, code=body.code, now=now)
    assert member.id is not None
    return BoundOut(member_id=member.id, member_code=member.member_code, status=member.status,
                    session=session_out(issued))


# --- the same binding as a small mobile page (server-rendered, no CDN) -----------------------------

def _page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    return member_pages.templates.TemplateResponse(request, name, context, status_code=status_code,
                                                   headers=member_pages.PAGE_HEADERS)


def _form_page(request: Request, *, state: str | None, phone: str | None = None, sent_to: str | None = None,
               error: str | None = None, status_code: int = 200) -> Response:
    return _page(request, "bind_phone.html", {"state": state, "phone": phone, "sent_to": sent_to, "error": error,
                                              "minutes": get_settings().wechat_bind_code_minutes}, status_code)


# The page answers HTML whatever the status (a person reads it); FastAPI's own 422 stays JSON.
PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the page", "content": {"text/html": {}}},
    **{status: {**ERROR_RESPONSES[status], "content": {"text/html": {}}} for status in (403, 404, 409, 422, 429)},
    503: {"description": "the SMS gateway did not take the code; try again", "content": {"text/html": {}}},
}


@router.get("/oauth/page", response_class=Response, responses=PAGE_RESPONSES,
            summary="The phone-binding page (after the OAuth callback)")
def binding_page(request: Request) -> Response:
    state = request.cookies.get(BIND_COOKIE)
    if not state:
        return _form_page(request, state=None, error="Open this page from the official account's menu.",
                          status_code=403)
    return _form_page(request, state=state)


@router.post("/oauth/page", response_class=Response, responses=PAGE_RESPONSES,
             summary="The page's forms: send a code to the phone, then bind it with the code")
def binding_page_post(request: Request, session: SessionDep, now: NowDep,
                      state: Annotated[str, Form(min_length=8, max_length=64)],
                      action: Annotated[str, Form(pattern="^(code|bind)$")],
                      phone: Annotated[str, Form(min_length=1, max_length=32)],
                      code: Annotated[str | None, Form(max_length=8)] = None) -> Response:
    try:
        _same_browser(request, state)
        if action == "code":
            normalised, failure = _send_code(session, state=state, phone=phone, now=now)
            if failure is not None:
                return _form_page(request, state=state, phone=phone, status_code=503,
                                  error="The code could not be sent just now; please try again.")
            return _form_page(request, state=state, phone=phone, sent_to=mask_phone(normalised))
        if not code or not code.strip().isdigit():
            return _form_page(request, state=state, phone=phone, sent_to=mask_phone(phone), status_code=422,
                              error="Enter the digits of the code.")
        member, issued = _bind(session, state=state, phone=phone, code=code, now=now)
    except DomainError as exc:
        return _form_page(request, state=state, phone=phone, sent_to=mask_phone(phone) if action == "bind" else None,
                          error=exc.message, status_code=status_for(exc))
    session_json = session_out(issued).model_dump_json()
    for raw, safe in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):  # inert inside <script>
        session_json = session_json.replace(raw, safe)
    response = _page(request, "bound.html", {"member_code": member.member_code, "phone": mask_phone(member.phone),
                                             "session_json": session_json,
                                             "home_url": get_settings().member_home_url})
    response.delete_cookie(BIND_COOKIE, path="/wechat/oauth")  # this binding is done
    return response
