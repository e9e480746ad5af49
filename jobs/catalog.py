"""The job modules; importing this registers them all."""

from jobs import (  # noqa: F401
    campaigns,
    crm,
    dispatch,
    housekeeping,
    journeys,
    lifecycle,
    loyalty_program,
    organisations,
    privacy,
    scores,
    webhooks,
    wechat,
)
