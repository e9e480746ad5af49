"""The built-in journeys and message templates (data, not code); on by default."""

from __future__ import annotations

from typing import Any

TEMPLATES: dict[str, str] = {
    "welcome": "Welcome, {name}! You are a {tier} member. Your points and benefits are in the app.",
    "how_it_works": "{name}, how your membership works: 1 point per yuan, tiers D→C→B→A as you spend.",
    "first_offer": "{name}, a first thank-you offer is waiting for you in the app.",
    "we_miss_you": "{name}, we miss you. You still have {points} points.",
    "comeback_offer": "{name}, come back this week for double points.",
    "strong_comeback_offer": "{name}, a 20% welcome-back coupon is yours until the end of the month.",
    "birthday": "Happy birthday, {name}! A small gift is waiting in your account.",
    "holiday": "{name}, warm wishes for {holiday} from all of us.",
    "account": "{name}, warm congratulations to your organisation on its special day, from all of us.",
}

BUILT_INS: list[dict[str, Any]] = [
    {"key": "welcome", "name": "Welcome", "trigger": "member.joined", "control_share": 0.1, "priority": 20, "steps": [
        {"day": 0, "kind": "send", "message": "welcome", "channel": "preferred", "purpose": "care"},
        {"day": 3, "kind": "send", "message": "how_it_works", "channel": "preferred", "purpose": "service"},
        {"day": 30, "kind": "send", "message": "first_offer", "channel": "preferred", "purpose": "marketing"},
    ]},
    {"key": "reactivation", "name": "Reactivation", "trigger": "member.dormant", "control_share": 0.1, "priority": 10,
     "steps": [
        {"day": 0, "kind": "send", "message": "we_miss_you", "channel": "preferred", "purpose": "care"},
        {"day": 7, "kind": "send", "message": "comeback_offer", "channel": "preferred", "purpose": "marketing"},
        {"day": 21, "kind": "send", "message": "strong_comeback_offer", "channel": "preferred",
         "purpose": "marketing"},
        {"day": 45, "kind": "lapse"},
    ]},
    {"key": "care", "name": "Birthday and holiday care", "trigger": "care.date", "control_share": 0.0, "priority": 0,
     "steps": [
        {"day": 0, "kind": "send", "message": "{occasion}", "channel": "preferred", "purpose": "care"},
    ]},
]
