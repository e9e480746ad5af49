"""``loyalty points``: ledger checks."""

from __future__ import annotations

import click

from cli.common import session_scope
from domain.points.service import verify_points


@click.group("points")
def points_group() -> None:
    """Points ledger operations."""


@points_group.command("verify")
@click.option("--member", "member_id", type=int, default=None, help="Check one member only.")
def verify(member_id: int | None) -> None:
    """Check that every balance equals the sum of its ledger and of its lots; exit 1 listing mismatches."""
    with session_scope() as session:
        problems = verify_points(session, member_id=member_id)
    if problems:
        for row in problems:
            click.echo(f"member {row['member_id']}: account available={row['available']} pending={row['pending']} "
                       f"debt={row['debt']}; ledger available={row['ledger_available']} "
                       f"pending={row['ledger_pending']}; lots available={row['lots_available']} "
                       f"pending={row['lots_pending']}", err=True)
        raise SystemExit(1)
    click.echo("points ledger consistent")


def register(main: click.Group) -> None:
    main.add_command(points_group)
