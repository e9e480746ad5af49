"""Which adapter sends on a message channel, from configuration: a webhook where a URL is set, else the
development recorder. Shared by the dispatcher and by the few sends that do not go through the outbox
(the SMS code a person asks for while binding their phone)."""

from __future__ import annotations

from domain.ports import ChannelAdapter
from domain.settings import Settings
from integrations.devlog import DevLogAdapter
from integrations.webhook import WebhookAdapter


def message_adapter(channel: str, settings: Settings) -> ChannelAdapter:
    url = settings.webhook_urls.get(channel)
    return WebhookAdapter(channel, url, timeout=settings.webhook_timeout_seconds) if url else DevLogAdapter(channel)
