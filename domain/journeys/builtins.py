"""The built-in journeys (data, not code); on by default. Their texts are in the template catalogue
(``domain/templates/service.py::BUILT_IN``)."""

from __future__ import annotations

from typing import Any

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
