"""Staff accounts: the named people behind the back office (agents, supervisors, marketers, operators)."""
