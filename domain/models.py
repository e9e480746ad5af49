"""Every table of the domain, imported in one place so Alembic and tests see the whole metadata."""

from domain.access.models import AccessLogEntry, ApiKey
from domain.campaigns.models import Campaign, CampaignMember
from domain.contact_policy.models import Complaint
from domain.crm.models import AgentNote, CallList, CallOutcome, InterestEvent, Lead
from domain.events.models import DomainEvent
from domain.journeys.models import Enrollment, Journey, JourneyVersion, StepExecution
from domain.lifecycle.models import ChurnRisk, MemberLifecycle
from domain.member_sessions.models import MemberSession
from domain.members.models import (
    Member,
    MemberChannelReachability,
    MemberConsent,
    MemberConsentEvent,
    MemberExternalId,
)
from domain.operations.models import JobRun
from domain.orders.models import Order, Refund
from domain.organisations.models import (
    AccountComplaint,
    AccountTeamMember,
    AccountVisit,
    Contract,
    FamilyLink,
    Organisation,
    OrganisationDate,
    OrganisationMember,
    PointsPool,
    PointsPoolMember,
    SharedTreatment,
)
from domain.points.models import LedgerEntry, PointsAccount, PointsLot, Redemption
from domain.privacy.models import Erasure
from domain.rebates.models import Coupon, RebateProgram, RebateSettlement
from domain.scores.models import ChannelScore, ChannelUsageFact, DemoChannelTruth, ScoreModel, ScoreReport
from domain.staff.models import StaffAccount, StaffSession
from domain.templates.models import MessageTemplate
from domain.tiers.models import TierEvent, TierStatus
from domain.touchpoints.models import CallTask, DeliveryAttempt, Touch
from domain.webhooks.models import WebhookDelivery, WebhookSubscription
from domain.wechat.models import AccessToken, Follower, OAuthState, ProcessedCallback, SubscriptionGrant

__all__ = [
    "MessageTemplate",
    "AccessLogEntry",
    "ApiKey",
    "DomainEvent",
    "JobRun",
    "Member",
    "MemberChannelReachability",
    "MemberConsent",
    "MemberConsentEvent",
    "MemberExternalId",
    "Order",
    "Refund",
    "LedgerEntry",
    "PointsAccount",
    "PointsLot",
    "Redemption",
    "Coupon",
    "RebateProgram",
    "RebateSettlement",
    "TierEvent",
    "TierStatus",
    "Complaint",
    "CallTask",
    "DeliveryAttempt",
    "Touch",
    "AgentNote",
    "InterestEvent",
    "CallList",
    "CallOutcome",
    "Lead",
    "Enrollment",
    "Journey",
    "JourneyVersion",
    "StepExecution",
    "Follower",
    "ProcessedCallback",
    "SubscriptionGrant",
    "AccessToken",
    "OAuthState",
    "Campaign",
    "CampaignMember",
    "Organisation",
    "OrganisationDate",
    "Contract",
    "AccountTeamMember",
    "OrganisationMember",
    "FamilyLink",
    "SharedTreatment",
    "AccountVisit",
    "AccountComplaint",
    "PointsPool",
    "PointsPoolMember",
    "StaffAccount",
    "StaffSession",
    "WebhookSubscription",
    "WebhookDelivery",
    "MemberSession",
    "ChannelUsageFact",
    "ChannelScore",
    "ScoreModel",
    "ScoreReport",
    "DemoChannelTruth",
    "MemberLifecycle",
    "ChurnRisk",
    "Erasure",
]
