"""Member use cases: join, look up, update profile, consents, soft-close."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from domain.clock import zone
from domain.db import advisory_xact_lock, among, from_table_row
from domain.errors import Conflict, InvalidInput, NotFound
from domain.events.service import record_event
from domain.exports.rules import safe_cell_sql
from domain.members.models import (
    ConsentStatus,
    ContactChannel,
    Gender,
    Member,
    MemberChannelReachability,
    MemberConsent,
    MemberConsentEvent,
    MemberExternalId,
    MemberStatus,
    SourceChannel,
)
from domain.members.rules import mask_phone_sql, member_code, normalise_phone, parse_member_code
from domain.paging import Page, keyset_page
from domain.settings import get_settings

MEMBER_CODE_SEQUENCE = sa.Sequence("member_code_serial")

# Profile fields a caller may set on create and change with update.
PROFILE_FIELDS = ("name", "birthday", "gender", "city", "timezone", "preferred_channel", "assigned_rep",
                  "email", "tags")


@dataclass
class NewMember:
    """What a channel knows about a person when they join."""

    source_channel: SourceChannel
    phone: str | None = None
    source_campaign: str | None = None
    joined_at: datetime | None = None
    wechat_openid: str | None = None
    wechat_unionid: str | None = None
    name: str | None = None
    birthday: date | None = None
    gender: Gender = Gender.UNKNOWN
    city: str | None = None
    timezone: str | None = None
    preferred_channel: ContactChannel | None = None
    assigned_rep: str | None = None
    email: str | None = None
    tags: list[str] = field(default_factory=list)
    consents: dict[ContactChannel, bool] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)


def _phone_owner(session: Session, phone: str) -> Member | None:
    return session.exec(select(Member).where(Member.phone == phone)).first()


def _refuse_taken_phone(session: Session, phone: str, *, except_id: int | None = None) -> None:
    owner = _phone_owner(session, phone)
    if owner is not None and owner.id != except_id:
        raise Conflict(
            f"phone {phone} already belongs to member {owner.id}",
            code="phone_taken",
            details={"phone": phone, "member_id": owner.id, "member_code": owner.member_code},
        )


def join_member(session: Session, *, new: NewMember, actor: str, now: datetime) -> Member:
    """Make a person a member: normalised keys, attribution and member code, tier D, a joined event."""
    settings = get_settings()
    phone = normalise_phone(new.phone, settings.default_country) if new.phone else None
    # Joins carrying the same key queue on one lock, so the loser sees the winner and gets the same
    # named 409 a sequential caller gets instead of a bare unique violation.
    for kind, key in (("phone", phone), ("openid", new.wechat_openid), ("unionid", new.wechat_unionid)):
        if key:
            advisory_xact_lock(session, "member-key", kind, key)
    if phone:
        _refuse_taken_phone(session, phone)
    timezone = new.timezone or settings.default_timezone
    zone(timezone)
    joined_at = new.joined_at or now
    serial = int(session.scalar(MEMBER_CODE_SEQUENCE.next_value()) or 0)
    joined_local = joined_at.astimezone(zone(timezone)).date()
    member = Member(
        member_code=member_code(channel=new.source_channel, campaign=new.source_campaign,
                                joined_on=joined_local, serial=serial),
        phone=phone,
        wechat_openid=new.wechat_openid,
        wechat_unionid=new.wechat_unionid,
        email=new.email,
        name=new.name,
        birthday=new.birthday,
        gender=new.gender,
        city=new.city,
        timezone=timezone,
        preferred_channel=new.preferred_channel,
        assigned_rep=new.assigned_rep,
        tags=list(new.tags),
        tier="D",
        status=MemberStatus.ACTIVE if phone else MemberStatus.PROSPECT,
        source_channel=new.source_channel,
        source_campaign=new.source_campaign,
        joined_at=joined_at,
        created_at=now,
        updated_at=now,
    )
    session.add(member)
    _flush_unique(session, member)
    assert member.id is not None
    for channel, granted in new.consents.items():
        set_consent(session, member_id=member.id, channel=channel, granted=granted, source=actor, now=now)
    for system, external_id in new.external_ids.items():
        add_external_id(session, member_id=member.id, system=system, external_id=external_id)
    record_event(session, kind="member.joined", member_id=member.id,
                 payload={"source_channel": member.source_channel, "source_campaign": member.source_campaign,
                          "status": member.status},
                 now=now)
    return member


def _flush_unique(session: Session, obj: object) -> None:
    """Flush ``obj``, turning a unique-key violation into a Conflict and leaving the session usable."""
    try:
        with session.begin_nested():
            session.flush()
    except sa.exc.IntegrityError as exc:
        if obj in session.new:
            session.expunge(obj)
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        raise Conflict("a member with the same key already exists", code="duplicate_key",
                       details={"constraint": constraint}) from exc


def get_members(session: Session, *, member_ids: Sequence[int]) -> list[Member]:
    """The members with these ids, in one statement (ids that do not exist are left out)."""
    return list(session.exec(select(Member).where(among(Member.id, set(member_ids)))))


def member_from_row(row: Mapping[str, Any]) -> Member:
    """A detached ``Member`` from a row that selected ``members.*`` (``domain.db.from_table_row``)."""
    return from_table_row(Member, row)


def get_member(session: Session, *, member_id: int, for_update: bool = False) -> Member:
    """A member by id, or NotFound. ``for_update`` takes FOR NO KEY UPDATE: it serialises writers of the
    member row but, unlike FOR UPDATE, not the key-share locks other transactions' inserts of orders, lots
    and ledger entries take through their foreign keys — with FOR UPDATE two orders of one member, each
    holding one of those locks, deadlock."""
    query = select(Member).where(Member.id == member_id)
    if for_update:
        query = query.with_for_update(key_share=True)
    member = session.exec(query).first()
    if member is None:
        raise NotFound(f"member {member_id} not found", code="member_not_found", details={"member_id": member_id})
    return member


KEY_COLUMNS = {"phone": "phone", "openid": "wechat_openid", "unionid": "wechat_unionid", "code": "member_code"}
"""Identity key → the ``members`` column that holds it (unique)."""


def identity_key(*, phone: str | None = None, openid: str | None = None, unionid: str | None = None,
                 code: str | None = None) -> tuple[str, str]:
    """The one identity key given, normalised as stored: (``members`` column, value)."""
    given = {k: v for k, v in (("phone", phone), ("openid", openid), ("unionid", unionid), ("code", code)) if v}
    if len(given) != 1:
        raise InvalidInput("give exactly one of phone, openid, unionid, code, external_id",
                           code="lookup_key_required")
    kind, value = next(iter(given.items()))
    if kind == "phone":
        value = normalise_phone(value, get_settings().default_country)
    elif kind == "code":
        if parse_member_code(value) is None:
            raise InvalidInput(f"{value!r} is not a member code", code="invalid_member_code", details={"code": value})
        value = value.strip().upper()
    return KEY_COLUMNS[kind], value


def find_member(session: Session, *, phone: str | None = None, openid: str | None = None,
                unionid: str | None = None, code: str | None = None, external: tuple[str, str] | None = None
                ) -> Member | None:
    """The member holding exactly one identity key, or None."""
    if external and not (phone or openid or unionid or code):
        return session.exec(select(Member).join(MemberExternalId, MemberExternalId.member_id == Member.id)  # type: ignore[arg-type]
                            .where(MemberExternalId.system == external[0],
                                   MemberExternalId.external_id == external[1])).first()
    if external:
        raise InvalidInput("give exactly one of phone, openid, unionid, code, external_id",
                           code="lookup_key_required")
    column, value = identity_key(phone=phone, openid=openid, unionid=unionid, code=code)
    return session.exec(select(Member).where(getattr(Member, column) == value)).first()


def lookup_member(session: Session, **keys: Any) -> Member:
    """Like ``find_member`` but NotFound when nobody holds the key."""
    member = find_member(session, **keys)
    if member is None:
        raise NotFound("no member with that key", code="member_not_found",
                       details={k: v for k, v in keys.items() if v})
    return member


def update_member(session: Session, *, member_id: int, changes: dict[str, Any], now: datetime) -> Member:
    """Change profile fields; binding a phone turns a prospect into an active member."""
    member = get_member(session, member_id=member_id, for_update=True)
    if member.status == MemberStatus.CLOSED:
        raise Conflict(f"member {member_id} is closed", code="member_closed", details={"member_id": member_id})
    unknown = set(changes) - set(PROFILE_FIELDS) - {"phone"}
    if unknown:
        raise InvalidInput("unknown fields", code="unknown_fields", details={"fields": sorted(unknown)})
    if "timezone" in changes:
        if not changes["timezone"]:
            raise InvalidInput("timezone cannot be empty", code="invalid_timezone")
        zone(changes["timezone"])
    if "phone" in changes:
        if changes["phone"] is None:
            raise InvalidInput("a phone can be changed but not removed", code="phone_required")
        phone = normalise_phone(changes.pop("phone"), get_settings().default_country)
        advisory_xact_lock(session, "member-key", "phone", phone)
        _refuse_taken_phone(session, phone, except_id=member.id)
        member.phone = phone
        if member.status == MemberStatus.PROSPECT:
            member.status = MemberStatus.ACTIVE
    # A cleared gender or tag list is "unknown" / none, not a NULL the columns refuse (which read as a conflict).
    if "gender" in changes and changes["gender"] is None:
        changes["gender"] = Gender.UNKNOWN
    if "tags" in changes and changes["tags"] is None:
        changes["tags"] = []
    for name, value in changes.items():
        setattr(member, name, value)
    member.updated_at = now
    session.add(member)
    _flush_unique(session, member)
    return member


def close_member(session: Session, *, member_id: int, reason: str, actor: str, now: datetime) -> Member:
    """Soft-close: keep the member and their history, contact them never again."""
    member = get_member(session, member_id=member_id, for_update=True)
    if member.status != MemberStatus.CLOSED:
        member.status = MemberStatus.CLOSED
        member.closed_at = now
        member.updated_at = now
        session.add(member)
        record_event(session, kind="member.closed", member_id=member.id,
                     payload={"reason": reason, "actor": actor}, now=now)
    return member


def set_member_status(session: Session, *, member_id: int, status: MemberStatus, now: datetime) -> Member:
    """Move a member along the lifecycle (dormant, lapsed, active again)."""
    member = get_member(session, member_id=member_id, for_update=True)
    if member.status != status and member.status != MemberStatus.CLOSED:
        previous = member.status
        member.status = status
        member.updated_at = now
        session.add(member)
        record_event(session, kind="member.status_changed", member_id=member.id,
                     payload={"from": previous, "to": status}, now=now)
    return member


def set_consent(session: Session, *, member_id: int, channel: ContactChannel, granted: bool, source: str,
                now: datetime) -> MemberConsent:
    """Record a consent answer; an opt-out takes effect for every later gate decision at once."""
    status = ConsentStatus.GRANTED if granted else ConsentStatus.OPTED_OUT
    consent = session.get(MemberConsent, (member_id, channel))
    if consent is None:
        consent = MemberConsent(member_id=member_id, channel=channel, status=status, source=source, changed_at=now)
    else:
        consent.status, consent.source, consent.changed_at = status, source, now
    session.add(consent)
    session.add(MemberConsentEvent(member_id=member_id, channel=channel, status=status, source=source,
                                   changed_at=now))
    record_event(session, kind="consent.changed", member_id=member_id,
                 payload={"channel": channel, "status": status, "source": source}, now=now)
    session.flush()
    return consent


def consents_of(session: Session, *, member_id: int) -> dict[ContactChannel, ConsentStatus]:
    """The member's consent per channel; a channel never asked about is absent."""
    rows = session.exec(select(MemberConsent).where(MemberConsent.member_id == member_id))
    return {ContactChannel(r.channel): ConsentStatus(r.status) for r in rows}


def add_external_id(session: Session, *, member_id: int, system: str, external_id: str) -> MemberExternalId:
    """Attach another system's id to the member; an id held by someone else is a conflict."""
    existing = session.exec(select(MemberExternalId).where(
        MemberExternalId.system == system, MemberExternalId.external_id == external_id)).first()
    if existing is not None:
        if existing.member_id != member_id:
            raise Conflict(f"{system}:{external_id} belongs to member {existing.member_id}",
                           code="external_id_taken", details={"member_id": existing.member_id})
        return existing
    row = MemberExternalId(member_id=member_id, system=system, external_id=external_id)
    session.add(row)
    return row


def external_ids_of(session: Session, *, member_id: int) -> dict[str, str]:
    rows = session.exec(select(MemberExternalId).where(MemberExternalId.member_id == member_id))
    return {r.system: r.external_id for r in rows}


def set_channel_reachability(session: Session, *, member_id: int, channel: ContactChannel, reachable: bool,
                             reason: str, now: datetime) -> MemberChannelReachability:
    """Record that a channel can (or cannot) reach the member; the contact gate reads it on every decision."""
    row = session.get(MemberChannelReachability, (member_id, channel))
    if row is None:
        row = MemberChannelReachability(member_id=member_id, channel=channel, reachable=reachable, reason=reason,
                                        changed_at=now)
    else:
        row.reachable, row.reason, row.changed_at = reachable, reason, now
    session.add(row)
    record_event(session, kind="channel.reachability_changed", member_id=member_id,
                 payload={"channel": channel, "reachable": reachable, "reason": reason}, now=now)
    session.flush()
    return row


def unreachable_channels(session: Session, *, member_id: int) -> dict[ContactChannel, str]:
    """Channels that cannot reach the member now, with the reason."""
    rows = session.exec(select(MemberChannelReachability).where(
        MemberChannelReachability.member_id == member_id, MemberChannelReachability.reachable == False))  # noqa: E712
    return {ContactChannel(r.channel): r.reason for r in rows}


def set_attribution_if_missing(session: Session, *, member_id: int, campaign: str | None, now: datetime) -> Member:
    """Record a campaign (a QR scene) as where the member came from, only if nothing is recorded yet."""
    member = get_member(session, member_id=member_id, for_update=True)
    if campaign and not member.source_campaign:
        member.source_campaign = campaign[:64]
        member.updated_at = now
        session.add(member)
    return member


def attach_wechat(session: Session, *, member_id: int, openid: str, unionid: str | None, now: datetime) -> Member:
    """Give the member their WeChat identity (phone binding); the keys stay unique."""
    advisory_xact_lock(session, "member-key", "openid", openid)
    member = get_member(session, member_id=member_id, for_update=True)
    member.wechat_openid = openid
    if unionid:
        member.wechat_unionid = unionid
    member.updated_at = now
    session.add(member)
    _flush_unique(session, member)
    return member


def detach_wechat(session: Session, *, member_id: int, now: datetime) -> Member:
    """Take the WeChat identity off a member (it moves to the member who proved the phone)."""
    member = get_member(session, member_id=member_id, for_update=True)
    member.wechat_openid = member.wechat_unionid = None
    member.updated_at = now
    session.add(member)
    session.flush()
    return member


# --- listing and search --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberSearch:
    """Filters of the member search; they combine with AND, and an empty search lists everyone."""

    phone: str | None = None
    """Exact, in any spelling ``normalise_phone`` reads."""
    name_prefix: str | None = None
    """Case-insensitive start of the name."""
    member_code: str | None = None
    """A whole code or its start (``WX-SPRING26-`` = everyone that campaign brought in over WeChat)."""
    tag: str | None = None
    tier: str | None = None
    status: MemberStatus | None = None
    lifecycle_stage: str | None = None
    """The stage the last daily refresh stored (``domain.lifecycle``); a member not yet refreshed has none."""


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def member_search_filter(search: MemberSearch) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of a search, shared by the paged list and the CSV export."""
    conditions: list[sa.ColumnElement[bool]] = []
    members = Member.__table__.c  # type: ignore[attr-defined]
    if search.phone:
        conditions.append(members.phone == normalise_phone(search.phone, get_settings().default_country))
    if search.name_prefix:
        conditions.append(members.name.ilike(_like_prefix(search.name_prefix.strip()), escape="\\"))
    if search.member_code:
        conditions.append(members.member_code.like(_like_prefix(search.member_code.strip().upper()), escape="\\"))
    if search.tag:
        conditions.append(members.tags.contains([search.tag]))
    if search.tier:
        conditions.append(members.tier == search.tier)
    if search.status:
        conditions.append(members.status == search.status.value)
    if search.lifecycle_stage:
        # Imported here: the lifecycle reads organisations' contracts, and organisations read members.
        from domain.lifecycle import service as lifecycle

        conditions.append(lifecycle.stage_piece(members.id) == search.lifecycle_stage)
    return conditions


def search_members(session: Session, *, search: MemberSearch, cursor: str | None, limit: int) -> Page[Member]:
    """Members matching the search, newest first, one page at a time."""
    query = sa.select(Member).where(*member_search_filter(search))
    return keyset_page(session, query, order_by=[Member.__table__.c.id], cursor=cursor,  # type: ignore[attr-defined]
                       limit=limit)


def search_export_query(search: MemberSearch, *, unmasked: bool) -> sa.Select[Any]:
    """A search result as CSV columns (phone masked unless ``unmasked``), in the list's order."""
    # Imported here: organisations read members (see member_search_filter).
    from domain.organisations.service import served_tier_sql

    m = Member.__table__.c  # type: ignore[attr-defined]
    return (sa.select(m.id.label("member_id"), m.member_code, safe_cell_sql(m.name).label("name"),
                      (m.phone if unmasked else mask_phone_sql(m.phone)).label("phone"), m.tier,
                      sa.literal_column(served_tier_sql("members")).label("served_tier"), m.status,
                      safe_cell_sql(m.city).label("city"),
                      safe_cell_sql(sa.func.array_to_string(m.tags, ";")).label("tags"), m.joined_at,
                      m.last_purchase_at)
            .where(*member_search_filter(search)).order_by(m.id.desc()))


def search_member_ids(search: MemberSearch) -> sa.Select[Any]:
    """The ids a search export shows (for the access log, set-based)."""
    return sa.select(Member.__table__.c.id).where(*member_search_filter(search))  # type: ignore[attr-defined]
