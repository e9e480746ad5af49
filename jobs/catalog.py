"""The job modules; importing this registers them all."""

from jobs import (  # noqa: F401
    campaigns,
    crm,
    dispatch,
    housekeeping,
    journeys,
    loyalty_program,
    organisations,
    webhooks,
    wechat,
)
