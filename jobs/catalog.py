"""The job modules; importing this registers them all."""

from jobs import campaigns, crm, dispatch, housekeeping, journeys, loyalty_program, organisations, wechat  # noqa: F401
