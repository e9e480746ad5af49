"""What personal data is, where it lives, and what erasure and retention do to it.

A member's data is every row of a table with a column pointing at the member (``MEMBER_KEYS``). Each such
table is classified here, once: ``keep`` (money-like records and legal proof: the ledger, orders, consents,
the access log), ``scrub`` (the row stays because other records count or reference it; its personal columns
are overwritten) or ``delete`` (identity keys and profiling that exist only to reach or target the person).
A test compares this catalogue with the schema, so a new table holding a member cannot be forgotten.
Pure: no session, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

MEMBER_KEYS = ("member_id", "relative_id", "via_member_id", "owner_member_id")
"""Columns that name a member; a table with one of them holds something about that member."""

SECRET_COLUMN_SUFFIXES = ("_hash",)
"""Never exported: hashes of refresh tokens and codes are secrets of the service, not the member's data."""

ERASED_TEXT = "[erased]"


class Action(StrEnum):
    KEEP = "keep"
    SCRUB = "scrub"
    DELETE = "delete"
    END = "end"
    """A link between people or to an organisation: ended (``removed_at``) rather than deleted, so the
    organisation's history stays whole."""


@dataclass(frozen=True)
class Treatment:
    action: Action
    why: str
    set: dict[str, Any] = field(default_factory=dict)
    """For ``scrub``: column → the value written over it (SQL text, e.g. ``NULL``, ``'{}'::jsonb``)."""


MEMBER_TABLES: dict[str, Treatment] = {
    "members": Treatment(Action.SCRUB, "the member row is the tombstone every ledger, order and coupon row points "
                         "to; the member code (channel, campaign, date, serial) identifies nobody outside the system",
                         {"phone": "NULL", "wechat_openid": "NULL", "wechat_unionid": "NULL", "email": "NULL",
                          "name": "NULL", "birthday": "NULL", "gender": "'unknown'", "city": "NULL",
                          "assigned_rep": "NULL", "tags": "'{}'", "status": "'closed'",
                          "closed_at": "COALESCE(closed_at, :now)", "updated_at": ":now"}),
    "points_ledger": Treatment(Action.KEEP, "points are money-like: the ledger stays whole (verify keeps passing)"),
    "points_lots": Treatment(Action.KEEP, "the ledger's lots"),
    "points_accounts": Treatment(Action.KEEP, "the derived balance of the ledger"),
    "points_redemptions": Treatment(Action.KEEP, "a redemption is a ledger movement"),
    "points_pools": Treatment(Action.KEEP, "a family pool's balance belongs to the pool"),
    "points_pool_members": Treatment(Action.KEEP, "the pool's accounting names its contributors"),
    "orders": Treatment(Action.KEEP, "a sale: accounting and refunds need it; no contact data in it"),
    "coupons": Treatment(Action.KEEP, "money-like: issued value stays accounted for"),
    "rebate_settlements": Treatment(Action.KEEP, "settled once per member and quarter: the key of that rule"),
    "tier_events": Treatment(Action.KEEP, "tier history explains ledger multipliers"),
    "member_tier_status": Treatment(Action.KEEP, "tier evaluation state, no personal data"),
    "member_consents": Treatment(Action.KEEP, "proof of consent and opt-out (privacy law asks for it)"),
    "member_consent_events": Treatment(Action.KEEP, "proof of consent and opt-out history"),
    "access_log": Treatment(Action.KEEP, "who read whose data is itself a legal record; the retention job ages it"),
    "domain_events": Treatment(Action.KEEP, "event payloads carry ids, tiers and amounts, never contact data; "
                               "webhook receivers dedupe by their ids"),
    "webhook_deliveries": Treatment(Action.KEEP, "delivery bookkeeping of those events"),
    "campaign_members": Treatment(Action.KEEP, "a campaign's measured uplift must not change after the fact"),
    "journey_enrollments": Treatment(Action.KEEP, "a journey's report must not change after the fact"),
    "leads": Treatment(Action.KEEP, "a call list's report (dialled, reached, accepted)"),
    "call_tasks": Treatment(Action.KEEP, "operational, no personal data"),
    "complaints": Treatment(Action.SCRUB, "dates and category stay for service statistics; the text goes",
                            {"note": f"'{ERASED_TEXT}'"}),
    "agent_notes": Treatment(Action.SCRUB, "what agents learned about the person", {"text": f"'{ERASED_TEXT}'",
                                                                                    "fields": "'{}'::jsonb"}),
    "call_outcomes": Treatment(Action.SCRUB, "outcome counts stay for reports; the free-text note goes",
                               {"note": "NULL"}),
    "touches": Treatment(Action.SCRUB, "touches count against caps and campaign reports; their personalised "
                         "variables and provider errors (which may quote an address) go",
                         {"variables": "'{}'::jsonb", "last_error": "NULL"}),
    "member_external_ids": Treatment(Action.DELETE, "identity keys in other systems: they would find the person"),
    "member_channel_reachability": Treatment(Action.DELETE, "facts about addresses that no longer exist"),
    "member_sessions": Treatment(Action.DELETE, "the member's logins end with their data"),
    "wechat_followers": Treatment(Action.DELETE, "keyed by the openid, an identity key"),
    "interest_events": Treatment(Action.DELETE, "marketing clues about the person"),
    "channel_scores": Treatment(Action.DELETE, "profiling: recomputed for members who remain"),
    "channel_usage_facts": Treatment(Action.DELETE, "behaviour used only for profiling"),
    "churn_risks": Treatment(Action.DELETE, "profiling"),
    "member_lifecycle": Treatment(Action.DELETE, "profiling"),
    "demo_channel_truth": Treatment(Action.DELETE, "synthetic demo data about the member"),
    "member_shared_treatment": Treatment(Action.DELETE, "derived from family and organisation links, which end"),
    "family_links": Treatment(Action.END, "a relation between two people; ended, with the time, both ways"),
    "organisation_members": Treatment(Action.END, "the person's role at an account"),
    "privacy_erasures": Treatment(Action.KEEP, "the tombstone itself"),
}

OPENID_TABLES: dict[str, Treatment] = {
    "wechat_oauth_states": Treatment(Action.DELETE, "a WeChat sign-in in progress: openid, unionid and phone"),
    "wechat_subscription_grants": Treatment(Action.DELETE, "the member's one-time message grants, by openid"),
}
"""Tables that name the member only by WeChat openid (no member column)."""


def is_exported(column: str) -> bool:
    return not column.endswith(SECRET_COLUMN_SUFFIXES)


@dataclass(frozen=True)
class RetentionPolicy:
    access_log_days: int
    touch_content_days: int
    closed_member_days: int
    """A closed member is erased this long after closing (0: never by the job)."""

    def cutoffs(self, as_of: datetime) -> dict[str, datetime | None]:
        return {"access_log": as_of - timedelta(days=self.access_log_days),
                "touch_content": as_of - timedelta(days=self.touch_content_days),
                "closed_member": as_of - timedelta(days=self.closed_member_days) if self.closed_member_days else None}
