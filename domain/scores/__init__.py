"""Channel usage, channel-preference scores and their models (DOMAIN.md, Channel preference)."""
