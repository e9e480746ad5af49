"""The contact gate's rules, pure: facts in, a decision with reasons out.

Priority is service > care > marketing. Service is stopped only by what no purpose may pass (a closed
member, an unreachable channel, a hard opt-out); care also respects quiet hours; marketing meets every
rule: consent, complaint cool-down, onboarding window, frequency caps and quiet hours.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from domain.members.models import MemberChannelReachability, MemberConsent
from domain.settings import Settings
from domain.touchpoints.models import COUNTED

_NEVER = datetime.max.replace(tzinfo=ZoneInfo("UTC"))


class Purpose(StrEnum):
    SERVICE = "service"
    CARE = "care"
    MARKETING = "marketing"


class Verdict(StrEnum):
    APPROVED = "approved"
    DEFERRED = "deferred"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Cap:
    name: str
    purposes: frozenset[str]
    channels: frozenset[str]
    limit: int
    window: timedelta


@dataclass(frozen=True)
class Policy:
    quiet_start: time
    quiet_end: time
    onboarding: timedelta
    complaint_cooldown: timedelta
    max_deferral: timedelta
    caps: tuple[Cap, ...]
    tier_overrides: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def caps_for(self, tier: str, channel: str, purpose: str) -> list[Cap]:
        """The caps a touch counts against, with the member's tier's limits."""
        overrides = self.tier_overrides.get(tier, {})
        return [Cap(c.name, c.purposes, c.channels, overrides.get(c.name, c.limit), c.window) for c in self.caps
                if channel in c.channels and purpose in c.purposes]


@dataclass(frozen=True)
class Facts:
    """What the gate knows about the member and their recent touches when it decides."""

    member_status: str
    tier: str
    timezone: str
    joined_at: datetime
    consent: str | None
    """``granted``, ``opted_out`` or None (never asked) for this channel."""
    unreachable: str | None
    """Why the channel cannot reach the member now, or None."""
    has_address: bool
    last_complaint_at: datetime | None
    planned: Mapping[str, Sequence[datetime]]
    """Cap name → send times of the member's touches already counted against it."""
    account_do_not_contact: str | None = None
    """The organisation whose account-level do-not-contact covers the member (caps and consents stay the
    person's own; this one flag applies to all the account's people)."""


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reasons: tuple[str, ...]
    send_at: datetime | None
    """When it may go out (approved: now; deferred: the next allowed time)."""
    next_allowed_at: datetime | None = None
    """For a rejection that time will lift (cool-down, onboarding), when it lifts."""


def in_quiet_hours(moment: datetime, timezone: str, start: time, end: time) -> bool:
    local = moment.astimezone(ZoneInfo(timezone)).time()
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def quiet_hours_sql(*, moment: str, timezone: str, start: time, end: time) -> tuple[str, dict[str, time]]:
    """``in_quiet_hours`` as a SQL predicate: ``moment`` (a timestamptz) and ``timezone`` (an IANA zone name) are
    the caller's SQL. PostgreSQL's ``AT TIME ZONE`` reads the same tz database as ``zoneinfo``, so the member's
    local wall time, and thus a DST day, is the same in both forms."""
    local = f"CAST(({moment}) AT TIME ZONE {timezone} AS time)"
    joined = "AND" if start <= end else "OR"  # a quiet period over midnight is "late OR early"
    return f"({local} >= :quiet_start {joined} {local} < :quiet_end)", {"quiet_start": start, "quiet_end": end}


def next_allowed_time_sql(*, moment: str, timezone: str, start: time, end: time) -> tuple[str, dict[str, time]]:
    """``next_allowed_time`` as SQL (a timestamptz): ``moment`` if outside quiet hours, else the quiet period's end
    on the right local date, read back through the member's zone on that date (``AT TIME ZONE`` takes a wall time
    in a spring-forward gap with the offset before it, as ``zoneinfo`` does with fold 0)."""
    quiet, params = quiet_hours_sql(moment=moment, timezone=timezone, start=start, end=end)
    local = f"(({moment}) AT TIME ZONE {timezone})"
    day = (f"CASE WHEN CAST({local} AS time) < :quiet_end THEN CAST({local} AS date) "
           f"ELSE CAST({local} AS date) + 1 END")
    return (f"CASE WHEN {quiet} THEN (({day}) + CAST(:quiet_end AS time)) AT TIME ZONE {timezone} "
            f"ELSE ({moment}) END"), params


def next_allowed_time(moment: datetime, timezone: str, start: time, end: time) -> datetime:
    """``moment`` if outside quiet hours, else the end of this quiet period in the member's local time.

    DST-safe: the local end time is built on the right local date and converted with that day's offset.
    """
    if not in_quiet_hours(moment, timezone, start, end):
        return moment
    tz = ZoneInfo(timezone)
    local = moment.astimezone(tz)
    day = local.date() if local.time() < end else local.date() + timedelta(days=1)
    candidate = datetime.combine(day, end, tzinfo=tz)
    # A wall time inside a spring-forward gap normalises forward through UTC.
    return candidate.astimezone(ZoneInfo("UTC")).astimezone(tz)


def in_complaint_cooldown(last_complaint_at: datetime | None, *, now: datetime, cooldown: timedelta) -> bool:
    """No marketing at all while the member's latest complaint is younger than the cool-down (default 90
    days), resolved or not. ``COMPLAINT_COOLDOWN_SQL`` is the same rule for set-based callers."""
    return last_complaint_at is not None and now - last_complaint_at < cooldown


COMPLAINT_COOLDOWN_SQL = ("EXISTS (SELECT 1 FROM complaints cc WHERE cc.member_id = {member_id} "
                          "AND cc.opened_at > :complaint_since)")
"""``in_complaint_cooldown`` as a SQL predicate; format ``member_id``, bind ``complaint_cooldown_params``."""


def complaint_cooldown_params(*, now: datetime, policy: Policy) -> dict[str, datetime]:
    return {"complaint_since": now - policy.complaint_cooldown}


def cap_allows(times: Sequence[datetime], at: datetime, limit: int, window: timedelta) -> bool:
    """Whether one more touch at ``at`` keeps every window of length ``window`` at or under ``limit``."""
    if limit <= 0:
        return False
    ordered = sorted(times)
    # The new touch breaks the cap iff some ``limit`` existing touches fit with it into one window.
    for i in range(len(ordered) - limit + 1):
        group = ordered[i:i + limit]
        if max(group[-1], at) - min(group[0], at) < window:
            return False
    return True


def full_caps(planned: Mapping[str, Sequence[datetime]], at: datetime, caps: Sequence[Cap]) -> list[str]:
    """The caps (by name, in policy order) that one more touch at ``at`` would break. ``caps_full_sql``
    is the same rule for set-based callers (the call lists)."""
    return [c.name for c in caps if not cap_allows(planned.get(c.name, ()), at, c.limit, c.window)]


@dataclass(frozen=True)
class _CapSql:
    name: str
    """The parameter holding ``cap:<name>``."""
    window: str
    """The parameter holding the window."""
    limit: str
    """The limit for the member's tier (SQL)."""
    counted: str
    """``touches {t} WHERE …``: the member's touches counted against the cap (format ``t``, a table alias)."""
    member_id: str
    kinds: str
    """The condition on a touch ``{t}`` (status, channel, purpose) that makes it count."""


def _caps_sql(policy: Policy, *, channel: str, purpose: Purpose, member_id: str, tier: str
              ) -> tuple[list[_CapSql], dict[str, Any]]:
    """The caps a touch counts against, in policy order, as SQL pieces, and their parameters."""
    if purpose == Purpose.SERVICE:
        return [], {}
    params: dict[str, Any] = {"cap_statuses": [s.value for s in COUNTED]}
    caps = []
    for i, cap in enumerate(c for c in policy.caps if channel in c.channels and purpose in c.purposes):
        overrides = [(t, limits[cap.name]) for t, limits in policy.tier_overrides.items() if cap.name in limits]
        limit = (f"CASE {tier} " + " ".join(f"WHEN :cap{i}_t{j} THEN {int(n)}" for j, (_, n) in enumerate(overrides))
                 + f" ELSE {int(cap.limit)} END") if overrides else str(int(cap.limit))
        params.update({f"cap{i}_t{j}": t for j, (t, _) in enumerate(overrides)})
        params.update({f"cap{i}_channels": sorted(cap.channels), f"cap{i}_purposes": sorted(cap.purposes),
                       f"cap{i}_window": cap.window, f"cap{i}_name": f"cap:{cap.name}"})
        kinds = (f"{{t}}.status = ANY(:cap_statuses) AND {{t}}.channel = ANY(:cap{i}_channels) "
                 f"AND {{t}}.purpose = ANY(:cap{i}_purposes)")
        caps.append(_CapSql(name=f":cap{i}_name", window=f"CAST(:cap{i}_window AS interval)", limit=limit,
                            counted=f"touches {{t}} WHERE {{t}}.member_id = {member_id} AND {kinds}",
                            member_id=member_id, kinds=kinds))
    return caps, params


def _cap_full_at(cap: _CapSql, at: str) -> str:
    """``not cap_allows`` at ``at`` in sets: a touch at ``at`` breaks a cap iff, for some x that is ``at`` or a
    counted touch in (at − window, at), the counted touches in [x, x + window) reach the limit."""
    return (f"({cap.limit} <= 0 OR EXISTS (SELECT 1 FROM (SELECT {at} AS x UNION ALL "
            f"SELECT ct.send_at FROM {cap.counted.format(t='ct')} AND ct.send_at > {at} - {cap.window} "
            f"AND ct.send_at < {at}) starts WHERE (SELECT count(*) FROM {cap.counted.format(t='cu')} "
            f"AND cu.send_at >= starts.x AND cu.send_at < starts.x + {cap.window}) >= {cap.limit}))")


def caps_full_sql(policy: Policy, *, channel: str, purpose: Purpose, member_id: str, tier: str,
                  at: str = "CAST(:cap_at AS timestamptz)") -> tuple[str, dict[str, Any]]:
    """``full_caps`` as SQL: an expression naming the first cap (``cap:<name>``) one more touch at ``at``
    (default: the parameter ``:cap_at``, bind it yourself) would break, or NULL; with its parameters.
    ``member_id`` and ``tier`` are the caller's SQL for the member's id and tier."""
    caps, params = _caps_sql(policy, channel=channel, purpose=purpose, member_id=member_id, tier=tier)
    whens = [f"WHEN {_cap_full_at(cap, at)} THEN CAST({cap.name} AS text)" for cap in caps]
    return ("(CASE " + " ".join(whens) + " END)") if whens else "CAST(NULL AS text)", params


def caps_full_names_sql(policy: Policy, *, channel: str, purpose: Purpose, member_id: str, tier: str,
                        at: str) -> tuple[str, dict[str, Any]]:
    """``full_caps`` as SQL: every cap (``cap:<name>``, policy order) one more touch at ``at`` would break, as a
    text array (empty: none)."""
    caps, params = _caps_sql(policy, channel=channel, purpose=purpose, member_id=member_id, tier=tier)
    names = [f"CASE WHEN {_cap_full_at(cap, at)} THEN CAST({cap.name} AS text) END" for cap in caps]
    return (f"array_remove(ARRAY[{', '.join(names)}], NULL)" if names else "CAST('{}' AS text[])"), params


def cap_candidates_sql(policy: Policy, *, channel: str, purpose: Purpose, member_id: str, tier: str,
                       start: str) -> tuple[str, dict[str, Any]]:
    """``_earliest_slot``'s candidates as SQL rows ``x``: ``start`` and, for each cap, the moment each counted
    touch leaves its window, if after ``start``."""
    caps, params = _caps_sql(policy, channel=channel, purpose=purpose, member_id=member_id, tier=tier)
    return " UNION ".join([f"SELECT {start} AS x"] + [
        # The member's recent touches first (OFFSET 0: by their (member_id, send_at) index; left to itself the
        # planner also scanned the channel index, 75,000 entries a member), then which of them count.
        f"SELECT cc.send_at + {cap.window} FROM (SELECT * FROM touches c0 WHERE c0.member_id = {cap.member_id} "
        f"AND c0.send_at > {start} - {cap.window} OFFSET 0) cc WHERE {cap.kinds.format(t='cc')}"
        for cap in caps]), params


def _earliest_slot(start: datetime, caps: Sequence[Cap], planned: Mapping[str, Sequence[datetime]],
                   quiet: tuple[time, time] | None, timezone: str, horizon: datetime) -> datetime | None:
    candidates = {start}
    for cap in caps:
        for t in planned.get(cap.name, ()):
            if t + cap.window > start:
                candidates.add(t + cap.window)
    for candidate in sorted(candidates):
        if candidate > horizon:
            return None
        slot = next_allowed_time(candidate, timezone, *quiet) if quiet else candidate
        if slot > horizon:
            return None
        if all(cap_allows(planned.get(cap.name, ()), slot, cap.limit, cap.window) for cap in caps):
            return slot
    return None


def decide(*, facts: Facts, channel: str, purpose: Purpose, policy: Policy, now: datetime,
           not_before: datetime | None = None) -> Decision:
    """Whether a touch may go out, when, and why not."""
    start = max(now, not_before) if not_before else now
    if facts.member_status == "closed":
        return Decision(Verdict.REJECTED, ("member_closed",), None)
    hard: list[str] = []
    if facts.unreachable:
        hard.append("channel_unreachable")
    if not facts.has_address:
        hard.append("no_address")
    if facts.consent == "opted_out":
        hard.append("consent_opted_out")
    if hard:
        return Decision(Verdict.REJECTED, tuple(hard), None)
    if purpose != Purpose.SERVICE and facts.account_do_not_contact:
        return Decision(Verdict.REJECTED, ("account_do_not_contact",), None)
    if purpose == Purpose.SERVICE:
        return Decision(Verdict.APPROVED, ("service",), start)

    reasons: list[str] = []
    next_allowed: datetime | None = None
    if purpose == Purpose.MARKETING:
        if facts.consent != "granted":
            reasons.append("consent_missing")
        if facts.last_complaint_at and in_complaint_cooldown(facts.last_complaint_at, now=now,
                                                             cooldown=policy.complaint_cooldown):
            reasons.append("complaint_cooldown")
            next_allowed = facts.last_complaint_at + policy.complaint_cooldown
        if now - facts.joined_at < policy.onboarding:
            reasons.append("onboarding_window")
            lifted = facts.joined_at + policy.onboarding
            next_allowed = max(next_allowed, lifted) if next_allowed else lifted
        if reasons:
            return Decision(Verdict.REJECTED, tuple(reasons), None, next_allowed)

    caps = policy.caps_for(facts.tier, channel, purpose)
    quiet = (policy.quiet_start, policy.quiet_end)
    slot = _earliest_slot(start, caps, facts.planned, quiet, facts.timezone, now + policy.max_deferral)
    if slot is None:
        full = full_caps(facts.planned, start, caps)
        # Beyond the deferral horizon: rejected, but the answer says when the caps let a touch through again.
        reopens = _earliest_slot(start, caps, facts.planned, quiet, facts.timezone, _NEVER)
        return Decision(Verdict.REJECTED, tuple(f"cap:{name}" for name in full) or ("cap",), None, reopens)
    if slot == now:
        return Decision(Verdict.APPROVED, (purpose.value,), slot)
    why = []
    if in_quiet_hours(start, facts.timezone, *quiet) or next_allowed_time(slot, facts.timezone, *quiet) != slot:
        why.append("quiet_hours")
    why += [f"cap:{name}" for name in full_caps(facts.planned, start, caps)]
    if not why and not_before and slot == not_before:
        why.append("requested_time")
    return Decision(Verdict.DEFERRED, tuple(why) or ("deferred",), slot)


def decision_sql(policy: Policy, *, channel: str, purpose: Purpose, now: datetime, member: str = "m",
                 account_do_not_contact: str = "false", latest_complaint: str | None = None
                 ) -> tuple[str, dict[str, Any]]:
    """``decide`` (no ``not_before``) in SQL: a subquery over the members row ``member`` for ``CROSS JOIN
    LATERAL``, giving ``verdict``, ``reasons``, ``send_at`` and ``next_allowed_at`` as ``decide`` would for a touch
    on ``channel`` for ``purpose`` at ``now`` — a rejection by the member's state, reachability, address, consent,
    account do-not-contact, complaint cool-down or onboarding window; an approval now; or a deferral to
    ``decide``'s earliest slot (candidates in order, each moved out of quiet hours, the first every cap allows).
    ``verdict`` is NULL where that search passes the deferral horizon first (``decide`` rejects, naming when the
    caps reopen): the caller asks ``decide`` for those. Each piece is its rule's own SQL form (caps:
    ``caps_full_sql``, ``caps_full_names_sql``, ``cap_candidates_sql``; quiet hours: ``quiet_hours_sql``,
    ``next_allowed_time_sql``; complaint: the latest complaint against the cool-down); ``account_do_not_contact``
    is the organisations' predicate (format ``member_id``). ``latest_complaint``: the caller's SQL for the member's
    latest complaint time, when it read them set-based (default: a correlated ``max``). Parameters are returned
    (prefix ``gate_``, plus the caps' and quiet hours')."""
    m = member
    marketing, service = purpose == Purpose.MARKETING, purpose == Purpose.SERVICE
    params: dict[str, Any] = {"gate_channel": channel, "gate_purpose": purpose.value, "gate_now": now}
    column = ADDRESS_FIELDS[channel]
    consent = (f"(SELECT gc.status FROM member_consents gc WHERE gc.member_id = {m}.id "
               f"AND gc.channel = CAST(:gate_channel AS text))")
    # The facts carry an unreachable row's reason and ``decide`` tests its truth: an empty reason does not block.
    unreachable = (f"EXISTS (SELECT 1 FROM member_channel_reachability gr WHERE gr.member_id = {m}.id "
                   f"AND gr.channel = CAST(:gate_channel AS text) AND gr.reachable IS FALSE AND gr.reason <> '')")
    no_address = f"coalesce({m}.{column}, '') = ''" if column else "false"
    facts = [f"{m}.status = 'closed' AS closed",
             f"array_remove(ARRAY[CASE WHEN {unreachable} THEN 'channel_unreachable' END, CASE WHEN {no_address} "
             f"THEN 'no_address' END, CASE WHEN f0.consent = 'opted_out' THEN 'consent_opted_out' END], NULL) AS hard",
             "false AS dnc" if service else f"{account_do_not_contact.format(member_id=f'{m}.id')} AS dnc"]
    if marketing:
        last_complaint = (latest_complaint
                          or f"(SELECT max(cc.opened_at) FROM complaints cc WHERE cc.member_id = {m}.id)")
        params.update(complaint_cooldown_params(now=now, policy=policy))
        params.update({"gate_cooldown": policy.complaint_cooldown, "gate_onboarding": policy.onboarding,
                       "gate_onboarded_before": now - policy.onboarding})
        # ``in_complaint_cooldown``: the latest complaint younger than the cool-down (COMPLAINT_COOLDOWN_SQL's
        # condition on the latest one, whose time the rejection's next_allowed_at needs).
        facts += [f"array_remove(ARRAY[CASE WHEN f0.consent IS DISTINCT FROM 'granted' THEN 'consent_missing' END, "
                  f"CASE WHEN f0.last_complaint > :complaint_since THEN 'complaint_cooldown' END, "
                  f"CASE WHEN {m}.joined_at > CAST(:gate_onboarded_before AS timestamptz) THEN 'onboarding_window' "
                  f"END], NULL) AS soft",
                  f"GREATEST(CASE WHEN f0.last_complaint > :complaint_since THEN f0.last_complaint + :gate_cooldown "
                  f"END, CASE WHEN {m}.joined_at > CAST(:gate_onboarded_before AS timestamptz) "
                  f"THEN {m}.joined_at + :gate_onboarding END) AS soft_until"]
    else:
        last_complaint = "CAST(NULL AS timestamptz)"
        facts += ["CAST('{}' AS text[]) AS soft", "CAST(NULL AS timestamptz) AS soft_until"]
    now_sql = "CAST(:gate_now AS timestamptz)"
    if service:
        first, slot, slot_ok, full_now = now_sql, now_sql, "true", "CAST('{}' AS text[])"
    else:
        def quiet(moment: str) -> str:
            return quiet_hours_sql(moment=moment, timezone=f"{m}.timezone", start=policy.quiet_start,
                                   end=policy.quiet_end)[0]

        pieces = {"channel": channel, "purpose": purpose, "member_id": f"{m}.id", "tier": f"{m}.tier"}
        full_at_x, caps_params = caps_full_sql(policy, at="c2.slot", **pieces)  # type: ignore[arg-type]
        full_now, _ = caps_full_names_sql(policy, at=now_sql, **pieces)  # type: ignore[arg-type]
        candidates, _ = cap_candidates_sql(policy, start=now_sql, **pieces)  # type: ignore[arg-type]
        _, quiet_params = quiet_hours_sql(moment=now_sql, timezone=f"{m}.timezone", start=policy.quiet_start,
                                          end=policy.quiet_end)
        params.update({**caps_params, **quiet_params, "gate_horizon": now + policy.max_deferral})
        # ``_earliest_slot``: walk the candidates in order, move each out of quiet hours, and stop at the first
        # that every cap allows, or at the first past the deferral horizon (then ``decide`` rejects, with when the
        # caps reopen, and the slot here is past the horizon: NULL, left to ``decide``).
        moved, _ = next_allowed_time_sql(moment="cand.x", timezone=f"{m}.timezone", start=policy.quiet_start,
                                         end=policy.quiet_end)
        search = (f"(SELECT c2.slot FROM (SELECT cand.x, {moved} AS slot FROM ({candidates}) cand OFFSET 0) c2 "
                  f"WHERE c2.x > CAST(:gate_horizon AS timestamptz) OR c2.slot > CAST(:gate_horizon AS timestamptz) "
                  f"OR {full_at_x} IS NULL ORDER BY c2.x LIMIT 1)")
        # The walk's first candidate is always now (every other one is later), moved out of quiet hours: ``first``.
        # The common cases stop there — now, outside quiet hours, or the end of the member's quiet hours — when
        # every cap allows it (CASE is lazy: the walk runs only for a member whose caps are full then).
        first, _ = next_allowed_time_sql(moment=now_sql, timezone=f"{m}.timezone", start=policy.quiet_start,
                                         end=policy.quiet_end)
        full_at_first, _ = caps_full_sql(policy, at="fs.first", **pieces)  # type: ignore[arg-type]
        slot = (f"CASE WHEN fs.first <= CAST(:gate_horizon AS timestamptz) AND {full_at_first} IS NULL "
                f"THEN fs.first ELSE {search} END")
        slot_ok = "f.slot <= CAST(:gate_horizon AS timestamptz)"
        # A deferral's reasons: quiet hours now (or at the slot, as ``decide`` checks), then the caps full now.
        full_now = (f"array_remove(ARRAY[CASE WHEN {quiet(now_sql)} OR {quiet('f.slot')} THEN 'quiet_hours' END], "
                    f"NULL) || {full_now}")
    refused = "{f}.closed OR {f}.hard <> '{{}}' OR {f}.dnc OR {f}.soft <> '{{}}'"
    return (f"SELECT CASE WHEN {refused.format(f='f')} THEN 'rejected' "
            f"WHEN {slot_ok} AND f.slot = {now_sql} THEN 'approved' WHEN {slot_ok} THEN 'deferred' END AS verdict, "
            "CAST(CASE WHEN f.closed THEN ARRAY['member_closed'] WHEN f.hard <> '{}' THEN f.hard "
            "WHEN f.dnc THEN ARRAY['account_do_not_contact'] WHEN f.soft <> '{}' THEN f.soft "
            # The caps full now name a deferral; computed here, in the one branch that needs them.
            f"WHEN f.slot = {now_sql} THEN ARRAY[CAST(:gate_purpose AS text)] "
            f"ELSE coalesce(nullif({full_now}, '{{}}'), ARRAY['deferred']) END AS text[]) "
            "AS reasons, "
            "f.slot AS send_at, "
            "CASE WHEN NOT (f.closed OR f.hard <> '{}' OR f.dnc) THEN f.soft_until END AS next_allowed_at "
            # OFFSET 0 keeps each fact a column computed once: a flattened subquery would repeat its subplans
            # in every CASE branch that names it. The slot is searched only for a touch no rule refuses (a
            # quarter of a marketing audience lacks consent), from the first candidate computed once.
            f"FROM (SELECT fs.*, CASE WHEN NOT ({refused.format(f='fs')}) THEN {slot} END AS slot "
            f"FROM (SELECT ff.*, {first} AS first "
            f"FROM (SELECT {', '.join(facts)} FROM (SELECT {consent} AS consent, {last_complaint} AS last_complaint "
            f"OFFSET 0) f0 OFFSET 0) ff OFFSET 0) fs OFFSET 0) f"), params


def policy_from_settings(settings: Settings) -> Policy:
    """Build the policy from configuration (``domain.settings.Settings``)."""

    def hhmm(text: str) -> time:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))

    caps = tuple(Cap(c["name"], frozenset(c["purposes"]), frozenset(c["channels"]), int(c["limit"]),
                     timedelta(days=float(c["window_days"]))) for c in settings.contact_caps)
    return Policy(quiet_start=hhmm(settings.quiet_hours_start),
                  quiet_end=hhmm(settings.quiet_hours_end),
                  onboarding=timedelta(days=settings.onboarding_days),
                  complaint_cooldown=timedelta(days=settings.complaint_cooldown_days),
                  max_deferral=timedelta(days=settings.max_deferral_days),
                  caps=caps, tier_overrides=settings.tier_cap_overrides)


# --- channel choice --------------------------------------------------------------------------------
# One rule for journeys, campaigns and the CRM (the first release had two fallbacks that drifted: WeChat in
# journeys, SMS in campaigns). ``choose_channel`` is the rule; ``channel_choice_sql`` is the same rule as a
# correlated SQL expression for set-based callers; tests/domain/test_rule_homes.py runs both on generated
# members in PostgreSQL and compares them.

ADDRESS_FIELDS: Mapping[str, str | None] = {"phone": "phone", "sms": "phone", "email": "email",
                                            "wechat": "wechat_openid", "app": None}
"""The member column holding a channel's address; None: the app reaches every member by id."""


def has_address(channel: str, member: Mapping[str, Any]) -> bool:
    """Whether the member row (column → value) has an address for the channel."""
    column = ADDRESS_FIELDS[channel]
    return column is None or bool(member.get(column))


def choose_channel(*, preferred: str | None, consented: Collection[str], reachable: Collection[str],
                   order: Sequence[str], scores: Mapping[str, float] | None = None) -> str | None:
    """The channel to talk to a member on, or None when no channel may carry the message (the caller
    reports the member unreachable and sends nothing).

    Only channels in ``order`` are candidates, and only if the member consented to them and they reach the
    member (an address, not marked unreachable). Among those: the member's own preferred channel; else the
    best-scoring one (``scores``: channel → preference score, from issue #18's model; none until then);
    else the first in ``order``. Ties in score go to the earlier channel in ``order``."""
    candidates = [c for c in order if c in consented and c in reachable]
    if not candidates:
        return None
    if preferred in candidates:
        return preferred
    scored = [c for c in candidates if scores and scores.get(c) is not None]
    if scored:
        assert scores is not None
        return max(scored, key=lambda c: (scores[c], -candidates.index(c)))
    return candidates[0]


def channel_choice_sql(members: sa.FromClause, *, order: Sequence[str],
                       scores: sa.FromClause | None = None) -> sa.ScalarSelect[Any]:
    """``choose_channel`` as a scalar subquery correlated to ``members`` (the members table or an alias):
    the chosen channel per row, NULL when none. ``scores``: a selectable with member_id, channel, score."""
    m = members.c
    candidate = sa.values(sa.column("channel", sa.String), sa.column("rank", sa.Integer), name="candidate").data(
        [(channel, rank) for rank, channel in enumerate(order)])
    ch = candidate.c.channel
    address = sa.case(*[(ch == channel, m[column].is_not(None))
                        for channel, column in ADDRESS_FIELDS.items() if column is not None], else_=sa.true())
    consent = MemberConsent.__table__.c  # type: ignore[attr-defined]
    reach = MemberChannelReachability.__table__.c  # type: ignore[attr-defined]
    consented = sa.exists().where(consent.member_id == m.id, consent.channel == ch,
                                  consent.status == "granted").correlate_except(MemberConsent.__table__)  # type: ignore[attr-defined]
    blocked = sa.exists().where(reach.member_id == m.id, reach.channel == ch, reach.reachable.is_(False)
                                ).correlate_except(MemberChannelReachability.__table__)  # type: ignore[attr-defined]
    query = sa.select(ch).select_from(candidate)
    ranking: list[Any] = [sa.func.coalesce(ch == m.preferred_channel, False).desc()]
    if scores is not None:
        query = query.outerjoin(scores, sa.and_(scores.c.member_id == m.id, scores.c.channel == ch))
        ranking.append(scores.c.score.desc().nulls_last())
    return (query.where(consented, ~blocked, address).order_by(*ranking, candidate.c.rank)
            .limit(1).correlate(members).scalar_subquery())
