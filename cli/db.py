"""``loyalty db``: migrations."""

from __future__ import annotations

import click

from cli.common import engine
from domain import migrations


@click.group("db")
def db_group() -> None:
    """Database schema: apply, roll back and check migrations."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    migrations.upgrade(engine(), revision)
    click.echo(f"database at {revision}")


@db_group.command("downgrade")
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Roll migrations back to REVISION (e.g. -1, or base)."""
    migrations.downgrade(engine(), revision)
    click.echo(f"database at {revision}")


@db_group.command("check")
def check() -> None:
    """Fail if the models and the migrations disagree (what autogenerate would add)."""
    diffs = migrations.pending_differences(engine())
    if diffs:
        for diff in diffs:
            click.echo(repr(diff), err=True)
        raise click.ClickException(f"{len(diffs)} differences between models and migrations")
    click.echo("models and migrations agree")


@db_group.command("url")
def url() -> None:
    """Print the database URL in use (starting the embedded server if there is no DATABASE_URL)."""
    click.echo(engine().url.render_as_string(hide_password=True))


def register(main: click.Group) -> None:
    main.add_command(db_group)
