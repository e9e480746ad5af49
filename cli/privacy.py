"""``loyalty privacy``: a member's data as JSON, erasure on request, retention now."""

from __future__ import annotations

import json
from datetime import datetime
from typing import IO

import click

from cli.common import AS_OF, engine, handle_domain_errors, session_scope
from domain.access.service import record_access
from domain.clock import utcnow
from domain.privacy import service as privacy


@click.group("privacy")
def privacy_group() -> None:
    """Personal-data requests: export, erase, retention (docs/operations.md, Privacy)."""


@privacy_group.command("export")
@click.argument("member_id", type=int)
@click.option("--reason", required=True, help="Why (the access log keeps it), e.g. a request's ticket number.")
@click.option("--out", type=click.File("w"), default="-", help="Write the JSON here (default: stdout).")
@handle_domain_errors
def export(member_id: int, reason: str, out: IO[str]) -> None:
    """Everything held about MEMBER_ID, as one JSON document (logged as an access by `cli`)."""
    now = utcnow()
    with session_scope() as session:
        document = privacy.export_member(session, member_id=member_id, now=now)
        record_access(session, api_key_name="cli", agent_id=None, member_id=member_id, action="privacy.export",
                      reason=reason, now=now)
    json.dump(document, out, ensure_ascii=False, indent=2, default=str)
    out.write("\n")


@privacy_group.command("erase")
@click.argument("member_id", type=int)
@click.option("--reason", required=True, help="Why (kept on the tombstone), e.g. a request's ticket number.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@handle_domain_errors
def erase(member_id: int, reason: str, yes: bool) -> None:
    """Erase MEMBER_ID's personal data; points, orders and the ledger stay whole. Repeating it changes nothing."""
    if not yes:
        click.confirm(f"Erase the personal data of member {member_id}? This cannot be undone", abort=True)
    with session_scope() as session:
        tombstone, fresh = privacy.erase_member(session, member_id=member_id, actor="cli", reason=reason,
                                                now=utcnow())
    click.echo(json.dumps({"member_id": member_id, "erased_at": tombstone.erased_at.isoformat(),
                           "replayed": not fresh}))


@privacy_group.command("retention")
@click.option("--as-of", type=AS_OF, default=None, help="Act as if it were this time (default: now).")
def retention(as_of: datetime | None) -> None:
    """Run the retention job now (the same as `loyalty jobs run privacy-retention`)."""
    from jobs.registry import load_all
    from jobs.runner import run_job

    load_all()
    outcome = run_job("privacy-retention", engine=engine(), as_of=as_of)
    click.echo(json.dumps({"status": outcome.status, "counts": outcome.counts, "error": outcome.error}, default=str))
    if outcome.status != "succeeded":
        raise SystemExit(1)


def register(main: click.Group) -> None:
    main.add_command(privacy_group)
