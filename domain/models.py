"""Every table of the domain, imported in one place so Alembic and tests see the whole metadata."""

from domain.access.models import AccessLogEntry, ApiKey
from domain.events.models import DomainEvent
from domain.members.models import (
    Member,
    MemberChannelReachability,
    MemberConsent,
    MemberConsentEvent,
    MemberExternalId,
)
from domain.operations.models import JobRun

__all__ = [
    "AccessLogEntry",
    "ApiKey",
    "DomainEvent",
    "JobRun",
    "Member",
    "MemberChannelReachability",
    "MemberConsent",
    "MemberConsentEvent",
    "MemberExternalId",
]
