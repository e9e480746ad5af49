"""``loyalty wechat``: publish the menu, make parametric QR codes."""

from __future__ import annotations

import json

import click
from wechatpy.exceptions import WeChatClientException

from cli.common import engine
from domain.settings import get_settings
from integrations.wechat.client import LoyaltyWeChatClient


def _client() -> LoyaltyWeChatClient:
    settings = get_settings()
    if not (settings.wechat_app_id and settings.wechat_app_secret):
        raise click.ClickException("set LOYALTY_WECHAT_APP_ID and LOYALTY_WECHAT_APP_SECRET first")
    return LoyaltyWeChatClient(settings.wechat_app_id, settings.wechat_app_secret, engine=engine(),
                               api_base_url=settings.wechat_api_base_url, timeout=settings.wechat_timeout_seconds)


@click.group("wechat")
def wechat_group() -> None:
    """The WeChat official account."""


@wechat_group.group("menu")
def menu_group() -> None:
    """The account's menu."""


@menu_group.command("push")
def push_menu() -> None:
    """Publish the menu from configuration (LOYALTY_WECHAT_MENU) to WeChat."""
    try:
        _client().call_with_one_refresh("post", "menu/create", data=get_settings().wechat_menu)
    except WeChatClientException as exc:
        raise click.ClickException(f"WeChat refused the menu: {exc.errcode} {exc.errmsg}") from exc
    click.echo("menu published")


@wechat_group.group("qrcode")
def qrcode_group() -> None:
    """Parametric QR codes: the attribution of stores, campaigns and reps."""


@qrcode_group.command("create")
@click.argument("scene")
def create_qrcode(scene: str) -> None:
    """Make a permanent QR code for SCENE (1-64 characters, e.g. store42); prints its ticket and URL."""
    if not 1 <= len(scene) <= 64:
        raise click.BadParameter("a scene has 1 to 64 characters", param_hint="SCENE")
    try:
        result = _client().call_with_one_refresh("post", "qrcode/create", data={
            "action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene}}})
    except WeChatClientException as exc:
        raise click.ClickException(f"WeChat refused the QR code: {exc.errcode} {exc.errmsg}") from exc
    click.echo(json.dumps({"scene": scene, "ticket": result.get("ticket"), "url": result.get("url")}))


def register(main: click.Group) -> None:
    main.add_command(wechat_group)
