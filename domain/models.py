"""Every table of the domain, imported in one place so Alembic and tests see the whole metadata."""

from domain.access.models import AccessLogEntry, ApiKey
from domain.events.models import DomainEvent
from domain.members.models import Member, MemberConsent, MemberConsentEvent, MemberExternalId
from domain.operations.models import JobRun

__all__ = [
    "AccessLogEntry",
    "ApiKey",
    "DomainEvent",
    "JobRun",
    "Member",
    "MemberConsent",
    "MemberConsentEvent",
    "MemberExternalId",
]
