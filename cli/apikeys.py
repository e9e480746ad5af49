"""``loyalty apikey``: issue, list and revoke API keys."""

from __future__ import annotations

import click

from cli.common import handle_domain_errors, session_scope
from domain.access import service
from domain.access.models import Scope
from domain.clock import utcnow


@click.group("apikey")
def apikey_group() -> None:
    """API keys. Scopes: app (member self-service), crm (agents), admin (everything)."""


@apikey_group.command("create")
@click.option("--name", required=True, help="Who uses the key, e.g. wechat-h5 or callcenter.")
@click.option("--scope", type=click.Choice([s.value for s in Scope]), required=True)
@click.option("--pii/--no-pii", default=False, help="A crm key that may see full phone numbers (supervisors).")
@handle_domain_errors
def create(name: str, scope: str, pii: bool) -> None:
    """Create a key and print it once; only its hash is stored."""
    with session_scope() as session:
        row, key = service.create_api_key(session, name=name, scope=Scope(scope), now=utcnow(), pii_access=pii)
    click.echo(key)
    click.echo(f"created {scope} key {name!r} (prefix {row.prefix}); store it now, it cannot be shown again",
               err=True)


@apikey_group.command("list")
def list_keys() -> None:
    """List keys (names, scopes, prefixes; never the keys)."""
    with session_scope() as session:
        for row in service.list_api_keys(session):
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            click.echo(f"{row.name:24} {row.scope:6} {row.prefix:10} {state}")


@apikey_group.command("revoke")
@click.option("--name", required=True)
@handle_domain_errors
def revoke(name: str) -> None:
    """Revoke a key at once."""
    with session_scope() as session:
        service.revoke_api_key(session, name=name, now=utcnow())
    click.echo(f"revoked {name!r}")


def register(main: click.Group) -> None:
    main.add_command(apikey_group)
