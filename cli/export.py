"""``loyalty export``: the API's CSV exports from the command line, streamed to a file with a progress bar."""

from __future__ import annotations

import getpass
import sys
from typing import Any, BinaryIO

import click

from cli.common import engine, handle_domain_errors, session_scope
from domain.access.service import record_bulk_access
from domain.campaigns import service as campaigns
from domain.clock import utcnow
from domain.crm import service as crm
from domain.exports.service import count_rows, stream_csv
from domain.members import service as members
from domain.members.models import MemberStatus


def _write(query: Any, out: BinaryIO, *, label: str) -> int:
    """Stream ``query`` as CSV into ``out``; the bar counts rows (lines) as PostgreSQL sends them."""
    total = count_rows(engine(), query)
    written = 0
    with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True) as bar:
        first = True
        for block in stream_csv(engine(), query):
            out.write(block)
            lines = block.count(b"\n") - (1 if first else 0)  # the header is not a row
            first = False
            step = max(0, min(lines, total - written))
            written += step
            bar.update(step)
    out.flush()
    return total


def _log(member_ids: Any, *, action: str, reason: str) -> None:
    with session_scope() as session:
        record_bulk_access(session, api_key_name="cli", agent_id=getpass.getuser(), staff_id=None,
                           member_ids=member_ids, action=action, reason=reason, now=utcnow())


@click.group("export")
def export_group() -> None:
    """CSV exports (formula-safe cells, UTF-8 with a byte-order mark), streamed from PostgreSQL."""


OUT = click.option("--out", "out", type=click.File("wb"), default="-", show_default=True,
                   help="File to write ('-' = standard output).")
PII = click.option("--pii", is_flag=True, help="Full phone numbers (default: masked). Recorded in the access log.")
REASON = click.option("--reason", default="export", show_default=True, help="Why (for the access log).")


@export_group.command("call-list")
@click.argument("call_list_id", type=int)
@OUT
@PII
@REASON
@handle_domain_errors
def export_call_list(call_list_id: int, out: BinaryIO, pii: bool, reason: str) -> None:
    """A call list's leads for a dialer, in dialling order."""
    with session_scope() as session:
        crm.get_call_list(session, call_list_id=call_list_id)
    _log(crm.lead_member_ids(call_list_id=call_list_id), action="export.call_list", reason=reason)
    rows = _write(crm.leads_export_query(call_list_id=call_list_id, unmasked=pii), out, label="leads")
    click.echo(f"{rows} leads exported", err=True)


@export_group.command("campaign")
@click.argument("campaign_id", type=int)
@OUT
@handle_domain_errors
def export_campaign(campaign_id: int, out: BinaryIO) -> None:
    """A launched campaign's audience with treatment/control and the gate's decision (no contact details)."""
    with session_scope() as session:
        campaigns.get_campaign(session, campaign_id=campaign_id)
    rows = _write(campaigns.audience_export_query(campaign_id=campaign_id), out, label="members")
    click.echo(f"{rows} audience members exported", err=True)


@export_group.command("members")
@click.option("--phone")
@click.option("--name-prefix")
@click.option("--member-code", help="A whole member code or its start.")
@click.option("--tag")
@click.option("--tier")
@click.option("--status", type=click.Choice([s.value for s in MemberStatus]))
@OUT
@PII
@REASON
@handle_domain_errors
def export_members(phone: str | None, name_prefix: str | None, member_code: str | None, tag: str | None,
                   tier: str | None, status: str | None, out: BinaryIO, pii: bool, reason: str) -> None:
    """A member search (same filters as GET /v1/members)."""
    search = members.MemberSearch(phone=phone, name_prefix=name_prefix, member_code=member_code, tag=tag, tier=tier,
                                  status=MemberStatus(status) if status else None)
    _log(members.search_member_ids(search), action="export.members", reason=reason)
    rows = _write(members.search_export_query(search, unmasked=pii), out, label="members")
    click.echo(f"{rows} members exported", err=True)


def register(main: click.Group) -> None:
    main.add_command(export_group)
