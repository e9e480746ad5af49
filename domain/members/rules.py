"""Pure rules about members: phone numbers and member codes."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

import phonenumbers
import sqlalchemy as sa

from domain.errors import InvalidInput
from domain.members.models import SourceChannel

# Two letters per channel keep the code short enough to read out over the phone.
CHANNEL_CODES: dict[SourceChannel, str] = {
    SourceChannel.CAMPAIGN_FORM: "CF",
    SourceChannel.PURCHASE: "PU",
    SourceChannel.WECHAT: "WX",
    SourceChannel.APP: "AP",
    SourceChannel.WEB: "WB",
    SourceChannel.CALL_CENTER: "CC",
    SourceChannel.STORE: "ST",
    SourceChannel.REFERRAL: "RF",
    SourceChannel.IMPORT: "IM",
}
_CAMPAIGN_CLEAN = re.compile(r"[^A-Z0-9]")
MEMBER_CODE_PATTERN = re.compile(r"^([A-Z]{2})-([A-Z0-9]{1,10})-(\d{8})-(\d{6,})$")


def normalise_phone(raw: str, default_region: str = "CN") -> str:
    """Read a phone number as people write it and return it in E.164, or refuse it clearly.

    ``13800138000``, ``+86 138-0013-8000`` and ``0086 138 0013 8000`` are the same member.
    """
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(f"{raw!r} is not a phone number", code="invalid_phone", details={"phone": raw}) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(f"{raw!r} is not a valid phone number", code="invalid_phone", details={"phone": raw})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str | None) -> str | None:
    """Show enough to confirm with the caller (prefix and last four), hide the rest."""
    if not e164:
        return e164
    if len(e164) <= 7:
        return "*" * len(e164)
    return e164[:6] + "*" * (len(e164) - 10) + e164[-4:]


def mask_phone_sql(column: Any) -> sa.ColumnElement[str]:
    """:func:`mask_phone` as SQL, for set-based reads such as CSV exports (a test compares the two)."""
    length = sa.func.length(column)
    return sa.case(
        (column.is_(None), sa.null()),
        (length <= 7, sa.func.repeat("*", length)),
        else_=sa.func.concat(sa.func.substr(column, 1, 6), sa.func.repeat("*", length - 10), sa.func.right(column, 4)))


def mask_email(email: str | None) -> str | None:
    """First letter and the domain: enough to confirm ("l***@example.com"), not enough to write to."""
    if not email or "@" not in email:
        return email and "***"
    local, domain = email.rsplit("@", 1)
    return f"{local[:1]}***@{domain}"


def visible_contact_details(*, phone: str | None, email: str | None, unmasked: bool) -> tuple[str | None, str | None]:
    """The one masking rule: a caller without the PII right gets phone and email masked, on every route."""
    return (phone, email) if unmasked else (mask_phone(phone), mask_email(email))


def campaign_segment(campaign: str | None) -> str:
    """The campaign part of the member code: upper-case letters and digits, ``NA`` when unknown."""
    cleaned = _CAMPAIGN_CLEAN.sub("", (campaign or "").upper())[:10]
    return cleaned or "NA"


def member_code(*, channel: SourceChannel, campaign: str | None, joined_on: date, serial: int) -> str:
    """Channel, campaign, join date and serial, e.g. ``WX-SPRING26-20261122-000042``.

    Analysis later groups by these segments, so each is fixed-format and recoverable (``parse_member_code``).
    """
    return f"{CHANNEL_CODES[channel]}-{campaign_segment(campaign)}-{joined_on:%Y%m%d}-{serial:06d}"


def parse_member_code(code: str) -> dict[str, str] | None:
    """Split a member code into its segments, or None if it is not one."""
    match = MEMBER_CODE_PATTERN.match(code.strip().upper())
    if not match:
        return None
    channel_code, campaign, joined, serial = match.groups()
    channel = next((c.value for c, cc in CHANNEL_CODES.items() if cc == channel_code), None)
    if channel is None:
        return None
    return {"channel": channel, "campaign": campaign, "joined_on": joined, "serial": serial}


# --- dormancy ----------------------------------------------------------------------------------------


def dormant_from(*, last_purchase_at: datetime | None, joined_at: datetime, days: int) -> datetime:
    """When an active member with no further purchase becomes dormant (default 180 days after the last
    purchase, or after joining if they never bought)."""
    return (last_purchase_at or joined_at) + timedelta(days=days)


def becomes_dormant(*, status: str, last_purchase_at: datetime | None, joined_at: datetime, as_of: datetime,
                    days: int) -> bool:
    """Whether the dormancy job turns this member dormant at ``as_of``. ``BECOMES_DORMANT_SQL`` is the same
    rule for the job's set-based statement."""
    return status == "active" and dormant_from(last_purchase_at=last_purchase_at, joined_at=joined_at,
                                               days=days) <= as_of


BECOMES_DORMANT_SQL = ("{members}.status = 'active' "
                       "AND coalesce({members}.last_purchase_at, {members}.joined_at) <= :dormant_cutoff")
"""``becomes_dormant`` in SQL; format ``members`` (the members alias), bind ``dormancy_params``."""


def dormancy_params(*, as_of: datetime, days: int) -> dict[str, datetime]:
    return {"dormant_cutoff": as_of - timedelta(days=days)}
