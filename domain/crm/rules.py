"""Pure rules of outbound call lists: what a call list's audience may say."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from domain.campaigns.rules import Age, Name, problems_of
from domain.errors import InvalidInput
from domain.members.models import MemberStatus


class CallListAudience(BaseModel):
    """Who a call list is extracted from: lists of tiers, statuses and cities; an age range in years."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: list[Name] | None = None
    """Tier names come from settings (``LOYALTY_TIER_THRESHOLDS_YUAN``); an unknown one matches nobody."""
    statuses: list[MemberStatus] | None = None
    cities: list[Name] | None = None
    min_age: Age | None = None
    max_age: Age | None = None
    organisations: Any = None
    organisation_roles: Any = None
    """Checked by ``domain.organisations.service.audience_condition``, the home of the organisation filter."""


def check_call_list_audience(audience: dict[str, Any]) -> CallListAudience:
    """The call list's audience, typed; an unknown key or a value of the wrong type is ``InvalidInput``
    (when the list is defined, not when it is extracted)."""
    unknown = set(audience) - set(CallListAudience.model_fields)
    if unknown:
        raise InvalidInput("unknown audience filters", code="unknown_filters", details={"filters": sorted(unknown)})
    try:
        return CallListAudience.model_validate(audience)
    except ValidationError as exc:
        raise InvalidInput("an audience filter has a value of the wrong type", code="invalid_audience",
                           details={"errors": problems_of(exc)}) from exc
