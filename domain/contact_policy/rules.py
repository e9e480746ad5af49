"""The contact gate's rules, pure: facts in, a decision with reasons out.

Priority is service > care > marketing. Service is stopped only by what no purpose may pass (a closed
member, an unreachable channel, a hard opt-out); care also respects quiet hours; marketing meets every
rule: consent, complaint cool-down, onboarding window, frequency caps and quiet hours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from domain.settings import Settings


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
    if purpose == Purpose.SERVICE:
        return Decision(Verdict.APPROVED, ("service",), start)

    reasons: list[str] = []
    next_allowed: datetime | None = None
    if purpose == Purpose.MARKETING:
        if facts.consent != "granted":
            reasons.append("consent_missing")
        if facts.last_complaint_at and now - facts.last_complaint_at < policy.complaint_cooldown:
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
        full = [c.name for c in caps if not cap_allows(facts.planned.get(c.name, ()), start, c.limit, c.window)]
        return Decision(Verdict.REJECTED, tuple(f"cap:{name}" for name in full) or ("cap",), None)
    if slot == now:
        return Decision(Verdict.APPROVED, (purpose.value,), slot)
    why = []
    if in_quiet_hours(start, facts.timezone, *quiet) or next_allowed_time(slot, facts.timezone, *quiet) != slot:
        why.append("quiet_hours")
    why += [f"cap:{c.name}" for c in caps if not cap_allows(facts.planned.get(c.name, ()), start, c.limit, c.window)]
    if not why and not_before and slot == not_before:
        why.append("requested_time")
    return Decision(Verdict.DEFERRED, tuple(why) or ("deferred",), slot)


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
