"""The job modules; importing this registers them all."""

from jobs import housekeeping  # noqa: F401
