"""Pure rules of campaigns: what an audience filter may say."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from domain.errors import InvalidInput
from domain.lifecycle.rules import LifecycleStage
from domain.members.models import MemberStatus, SourceChannel

Name = Annotated[str, Field(min_length=1, max_length=64)]
Age = Annotated[int, Field(ge=0, le=150)]
Fen = Annotated[int, Field(ge=0, le=10**15)]


def _iso_text(value: Any) -> Any:
    if not isinstance(value, str):  # pydantic would read a number as seconds since 1970: refuse it instead
        raise ValueError("an instant is an ISO 8601 string with its zone, e.g. 2026-01-01T00:00:00+08:00")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
A = TypeVar("A", bound="MemberAudience")


class MemberAudience(BaseModel):
    """Who a campaign or a call list is for: the filters both share (they combine with AND). Lists are lists and
    numbers are numbers: anything else is refused when the campaign or list is defined, not when it runs.
    Their SQL is ``domain.campaigns.service.audience_condition``, used by campaigns and call lists alike."""

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
    lifecycle_stages: list[LifecycleStage] | None = None
    """onboarding, growth, maturity, decline (``domain.lifecycle``); an unknown stage is refused."""
    at_risk: bool | None = None
    """True: only members on the churn warning's at-risk list; False: only members not on it."""


class CampaignAudience(MemberAudience):
    """A campaign's audience: the shared filters, and what a campaign adds (tags, where members came from,
    purchase dates, qualifying spend); instants carry their zone."""

    tags: list[Name] | None = None
    source_channels: list[SourceChannel] | None = None
    last_purchase_before: Instant | None = None
    last_purchase_after: Instant | None = None
    min_spend_fen: Fen | None = None
    max_spend_fen: Fen | None = None


FILTER_KEYS = frozenset(CampaignAudience.model_fields)


def problems_of(exc: ValidationError) -> list[dict[str, Any]]:
    """A pydantic error list in the API's ``details.errors`` form (no input values echoed back)."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]


def check_audience(audience: dict[str, Any], model: type[A]) -> A:
    """The audience filter, typed as ``model``; an unknown key or a value of the wrong type is ``InvalidInput``."""
    unknown = set(audience) - set(model.model_fields)
    if unknown:
        raise InvalidInput("unknown audience filters", code="unknown_filters", details={"filters": sorted(unknown)})
    try:
        return model.model_validate(audience)
    except ValidationError as exc:
        raise InvalidInput("an audience filter has a value of the wrong type", code="invalid_audience",
                           details={"errors": problems_of(exc)}) from exc


NAMELESS = "member"
"""How a campaign's text addresses a member who gave no name."""


def campaign_variables(*, name: str | None, tier: str) -> dict[str, str]:
    """What a campaign's text is filled with for one member: their name (``NAMELESS`` if none) and tier."""
    return {"name": name or NAMELESS, "tier": tier}


def campaign_variables_sql(member: str = "m") -> dict[str, str]:
    """``campaign_variables`` as SQL over the members row ``member``: variable → its text, never NULL."""
    return {"name": f"coalesce(nullif({member}.name, ''), '{NAMELESS}')", "tier": f"{member}.tier"}
