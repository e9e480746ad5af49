"""The WeChat channel adapter: service notices as template messages, care and marketing only as
customer-service messages inside WeChat's interaction window (WeChat forbids marketing in templates)."""

from __future__ import annotations

import logging

import requests
from sqlalchemy.engine import Engine
from wechatpy.exceptions import WeChatClientException

from domain.ports import DeliveryOutcome, DeliveryResult, OutboundMessage
from domain.settings import Settings
from integrations.wechat.client import LoyaltyWeChatClient

log = logging.getLogger("delivery.wechat")

PERMANENT = {40003: "invalid_openid", 43004: "wechat_unsubscribed", 45015: "outside_interaction_window",
             43101: "subscription_refused", 47001: "malformed_message", 47003: "invalid_template_arguments",
             40037: "invalid_template_id"}
RATE_LIMITED = {45009: 3600, 45011: 60, 45047: 300}


def _subscription_data(message: OutboundMessage) -> dict[str, dict[str, str]]:
    """A subscription template's fields are named by WeChat (``thing1``, ``time2`` …): the touch's variables
    carry them; a touch without any sends its text as ``thing1`` (WeChat allows 20 characters there)."""
    fields = {k: {"value": str(v)} for k, v in message.variables.items() if k != "body"}
    return fields or {"thing1": {"value": message.body[:20]}}


class WeChatAdapter:
    channel = "wechat"

    def __init__(self, settings: Settings, engine: Engine, client: LoyaltyWeChatClient | None = None):
        self.settings = settings
        self.local = not (settings.wechat_app_id and settings.wechat_app_secret) and client is None
        self.sent_locally: list[OutboundMessage] = []
        self.client = client or (None if self.local else LoyaltyWeChatClient(
            settings.wechat_app_id, settings.wechat_app_secret, engine=engine,
            api_base_url=settings.wechat_api_base_url, timeout=settings.wechat_timeout_seconds))

    def send(self, message: OutboundMessage) -> DeliveryResult:
        openid = message.address.get("openid")
        if not openid:
            return DeliveryResult(DeliveryOutcome.FAILED, reason="no_openid")
        if self.local or self.client is None:
            self.sent_locally.append(message)
            log.info("local mode: would send %s/%s to %s: %s", message.purpose, message.template, openid, message.body)
            return DeliveryResult(DeliveryOutcome.SENT, provider_ref=f"local:{message.touch_id}")
        try:
            subscription = message.address.get("subscription_template_id")
            if message.purpose == "service" and subscription:
                # The follower granted this template (one grant = one send), reserved by the dispatcher.
                result = self.client.call_with_one_refresh("post", "message/subscribe/bizsend", data={
                    "touser": openid, "template_id": subscription, "page": "",
                    "data": _subscription_data(message)})
                return DeliveryResult(DeliveryOutcome.SENT, provider_ref=str(result.get("msgid") or
                                                                               f"subscribe:{message.touch_id}"))
            if message.purpose == "service":
                template_id = self.settings.wechat_templates.get(message.template)
                if not template_id:
                    if message.template in self.settings.wechat_subscription_templates:
                        return DeliveryResult(DeliveryOutcome.FAILED, reason="no_subscription_grant")
                    return DeliveryResult(DeliveryOutcome.FAILED, reason=f"no_template_for:{message.template}")
                result = self.client.call_with_one_refresh("post", "message/template/send", data={
                    "touser": openid, "template_id": template_id, "client_msg_id": message.idempotency_key,
                    "data": {"first": {"value": message.body}, **{k: {"value": str(v)} for k, v in
                                                                   message.variables.items() if k != "body"}}})
                return DeliveryResult(DeliveryOutcome.SENT, provider_ref=str(result.get("msgid")))
            self.client.call_with_one_refresh("post", "message/custom/send", data={
                "touser": openid, "msgtype": "text", "text": {"content": message.body}})
            return DeliveryResult(DeliveryOutcome.SENT, provider_ref=f"custom:{message.touch_id}")
        except WeChatClientException as exc:
            code = int(exc.errcode) if exc.errcode is not None else -1
            if code in RATE_LIMITED:
                return DeliveryResult(DeliveryOutcome.RETRY, reason=f"wechat {code}: {exc.errmsg}",
                                      retry_after_seconds=RATE_LIMITED[code])
            reason = PERMANENT.get(code, f"wechat {code}: {exc.errmsg}")
            return DeliveryResult(DeliveryOutcome.FAILED, reason=reason, channel_unreachable=code == 43004)
        except requests.RequestException as exc:
            return DeliveryResult(DeliveryOutcome.RETRY, reason=f"{type(exc).__name__}")
