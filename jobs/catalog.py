"""The job modules; importing this registers them all."""

from jobs import housekeeping, loyalty_program  # noqa: F401
