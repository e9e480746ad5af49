"""Scheduled work: one module per job, a registry, a runner that owns sessions, locks, run records and progress."""
