"""The business: members, tiers, points, contact policy … Plain Python; knows nothing of HTTP or the scheduler."""
