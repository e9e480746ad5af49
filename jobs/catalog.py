"""The job modules; importing this registers them all."""

from jobs import dispatch, housekeeping, loyalty_program  # noqa: F401
