"""Pure rules of outbound call lists: what a call list's audience may say."""

from __future__ import annotations

from typing import Any

from domain.campaigns.rules import MemberAudience, check_audience


class CallListAudience(MemberAudience):
    """Who a call list is extracted from: the filters campaigns share (tiers, statuses, cities, an age range,
    organisations and roles, lifecycle stages, the at-risk list), and no more: a call is a person's time, so
    the list is scored by its strategy rather than narrowed by purchase history."""


def check_call_list_audience(audience: dict[str, Any]) -> CallListAudience:
    """The call list's audience, typed; an unknown key or a value of the wrong type is ``InvalidInput``
    (when the list is defined, not when it is extracted)."""
    return check_audience(audience, CallListAudience)
