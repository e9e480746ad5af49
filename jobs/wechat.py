"""WeChat jobs: the work the callback must not do within WeChat's 5-second limit."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from wechatpy.exceptions import WeChatClientException

from domain.member_sessions import service as member_sessions
from domain.settings import get_settings
from domain.wechat import service as wechat
from integrations.wechat.client import LoyaltyWeChatClient
from jobs.context import JobContext
from jobs.registry import JobSpec, register

INVALID_OPENID = 40003


def _unionids(client: LoyaltyWeChatClient, openids: list[str]) -> dict[str, str | None]:
    """openid → unionid (None: WeChat has none for it). One batch call; if WeChat refuses the batch for
    an openid it does not know, each is asked on its own so one bad openid does not block the rest."""
    try:
        answer = client.call_with_one_refresh("post", "user/info/batchget", data={
            "user_list": [{"openid": o, "lang": "zh_CN"} for o in openids]})
        found: dict[str, str | None] = {u["openid"]: u.get("unionid") for u in answer.get("user_info_list", [])}
    except WeChatClientException as exc:
        if exc.errcode != INVALID_OPENID:
            raise
        found = {}
        for openid in openids:
            try:
                info = client.call_with_one_refresh("get", "user/info", params={"openid": openid, "lang": "zh_CN"})
                found[openid] = info.get("unionid")
            except WeChatClientException as one:
                if one.errcode != INVALID_OPENID:
                    raise
    return {o: found.get(o) for o in openids}


def link_wechat_unionids(ctx: JobContext) -> dict[str, Any]:
    """Ask WeChat's user API for followers' unionids and link each follower to the member who holds it
    (a prospect created by the follow is merged into a member known from another app of the platform)."""
    settings = get_settings()
    client = ctx.options.get("wechat_client")
    if client is None:
        if not (settings.wechat_app_id and settings.wechat_app_secret):
            ctx.log.info("WeChat is not configured: no unionids to ask for")
            return {"skipped": "wechat_not_configured"}
        client = LoyaltyWeChatClient(settings.wechat_app_id, settings.wechat_app_secret, engine=ctx.engine,
                                     api_base_url=settings.wechat_api_base_url,
                                     timeout=settings.wechat_timeout_seconds)
    totals = wechat.UnionidLinks()
    for _ in range(int(ctx.options.get("max_batches", 50))):
        with ctx.unit_of_work() as session:
            openids = wechat.followers_missing_unionid(
                session, limit=settings.wechat_unionid_batch, now=ctx.as_of,
                recheck_after=timedelta(days=settings.wechat_unionid_recheck_days))
        if not openids:
            break
        found = _unionids(client, openids)  # outside any transaction: WeChat may be slow
        with ctx.unit_of_work() as session:
            batch = wechat.link_unionids(session, found=found, now=ctx.as_of)
            session.commit()
        for name, value in asdict(batch).items():
            setattr(totals, name, getattr(totals, name) + value)
        ctx.progress.advance(len(openids))
    result = asdict(totals)
    if any(result.values()):
        ctx.log.info("unionids: %s", result)
    return result


register(JobSpec(name="link-wechat-unionids", func=link_wechat_unionids,
                 description=link_wechat_unionids.__doc__ or "", schedule={"minute": "*/10"}))


def prune_wechat(ctx: JobContext) -> dict[str, Any]:
    """Delete phone-binding attempts and SMS sign-in codes (with their code digests) and callback dedupe keys
    past retention: rows that unauthenticated callers create must not grow without bound."""
    with ctx.unit_of_work() as session:
        counts = wechat.prune_bindings_and_callbacks(session, as_of=ctx.as_of)
        counts["sign_in_codes"] = member_sessions.prune_sign_in_codes(session, as_of=ctx.as_of)
        session.commit()
    return counts


register(JobSpec(name="prune-wechat", func=prune_wechat, description=prune_wechat.__doc__ or "",
                 schedule={"hour": 4, "minute": 20}))
