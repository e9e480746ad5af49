"""Lifecycle stage and churn risk (DOMAIN.md, Lifecycle and journeys)."""
