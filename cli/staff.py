"""``loyalty staff``: named staff accounts (agents, supervisors, marketers, operators)."""

from __future__ import annotations

import click

from cli.common import handle_domain_errors, session_scope
from domain.clock import utcnow
from domain.staff import service
from domain.staff.models import StaffRole

PASSWORD = click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
                        help="Asked for when not given (never put it in shell history on a shared machine).")


@click.group("staff")
def staff_group() -> None:
    """Staff accounts. Roles: agent, supervisor, marketer, operator. A person logs in with
    POST /v1/staff/sessions and calls the API with the token it returns."""


@staff_group.command("create")
@click.option("--username", required=True, help="Lower-case, never renamed or reused, e.g. li.lei")
@click.option("--name", "display_name", default="", help="Display name, e.g. 'Li Lei'.")
@click.option("--role", type=click.Choice([r.value for r in StaffRole]), required=True)
@click.option("--pii/--no-pii", default=False, help="May see members' full phone numbers and emails.")
@PASSWORD
@handle_domain_errors
def create(username: str, display_name: str, role: str, pii: bool, password: str) -> None:
    """Open an account (the password is stored as an argon2id hash)."""
    with session_scope() as session:
        account = service.create_staff(session, username=username, display_name=display_name or username,
                                       role=StaffRole(role), password=password, pii_access=pii, now=utcnow())
    click.echo(f"created {account.role} {account.username!r}{' with PII access' if pii else ''}")


@staff_group.command("list")
def list_staff() -> None:
    """Accounts, roles, PII right and state (never passwords)."""
    with session_scope() as session:
        for row in service.list_staff(session):
            state = f"disabled {row.disabled_at:%Y-%m-%d}" if row.disabled_at else "active"
            click.echo(f"{row.username:24} {row.role:10} {'pii' if row.pii_access else '-':4} {state:20} "
                       f"{row.display_name}")


@staff_group.command("disable")
@click.option("--username", required=True)
@handle_domain_errors
def disable(username: str) -> None:
    """Stop an account at once; its sessions end."""
    with session_scope() as session:
        service.disable_staff(session, username=username, now=utcnow())
    click.echo(f"disabled {username!r}; every session of theirs has ended")


@staff_group.command("set-password")
@click.option("--username", required=True)
@PASSWORD
@handle_domain_errors
def set_password(username: str, password: str) -> None:
    """A new password; existing sessions end and the wrong-password throttle is cleared."""
    with session_scope() as session:
        service.set_password(session, username=username, password=password, now=utcnow())
    click.echo(f"password of {username!r} changed; their sessions have ended")


def register(main: click.Group) -> None:
    main.add_command(staff_group)
