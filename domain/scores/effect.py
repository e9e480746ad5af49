"""The campaign-effect benchmark: the same synthetic campaign twice through the contact gate — once on each
member's best-scoring channel, once on the channel the rule picks without scores — on the seeded population,
whose true acceptance per channel decides who accepts (the material's 6 % → 7 %+ by channel matching).

Both runs go through the gate batch by batch, each batch in its own transaction that is rolled back (the gate's
advisory locks last until a transaction ends, so one transaction for 50,000 members would run out of lock
slots): the gate decides for real (consents, complaints, caps, quiet hours), nothing is kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from domain.contact_policy import service as gate
from domain.db import unit_of_work
from domain.journeys.rules import _wilson, conversion_uplift
from domain.scores.service import allow_long_statements

CAMPAIGN_ORDER = ("phone", "sms", "wechat", "app", "email")
"""Channels the benchmark campaign may use; without scores the rule takes the first consented, reachable one —
a telemarketing campaign that falls back to messages."""
CONTACTED = ("approved", "deferred")
BATCH = 2_000


def _sample(session: Session, *, members: int, seed: int) -> tuple[list[int], dict[int, dict[str, float]],
                                                                    dict[int, str]]:
    rows = session.execute(sa.text(
        "SELECT t.member_id, t.acceptance, t.preferred FROM demo_channel_truth t JOIN members m ON m.id = t.member_id "
        "WHERE m.status <> 'closed' ORDER BY hashint4(t.member_id # :seed), t.member_id LIMIT :n"),
        {"seed": seed, "n": members}).all()
    return ([r[0] for r in rows], {r[0]: r[1] for r in rows}, {r[0]: r[2] for r in rows})


def _run_arm(engine: Engine, *, ids: list[int], use_scores: bool, name: str, now: datetime) -> dict[int, str]:
    """Channel chosen and gate decision per member; returns member → channel for the contacted ones."""
    contacted: dict[int, str] = {}
    for start in range(0, len(ids), BATCH):
        with unit_of_work(engine) as session:  # never committed: rolled back when it closes
            allow_long_statements(session)
            chosen = gate.choose_channels(session, member_ids=ids[start:start + BATCH], order=list(CAMPAIGN_ORDER),
                                          use_scores=use_scores)
            touches = gate.request_touches(session, [
                gate.TouchRequest(member_id=m, channel=c, purpose="marketing", source=f"benchmark:{name}",
                                  idempotency_key=f"{name}:{m}", template="benchmark_offer", variables={})
                for m, c in sorted(chosen.items()) if c is not None], now=now)
            contacted.update({t.member_id: t.channel for t, _ in touches if t.decision in CONTACTED})
    return contacted


def campaign_effect(engine: Engine, *, members: int, seed: int, now: datetime) -> dict[str, Any]:
    """Run the benchmark on ``members`` seeded members; acceptance per arm with its 95 % interval."""
    with unit_of_work(engine) as session:
        ids, acceptance, preferred = _sample(session, members=members, seed=seed)
    arms: dict[str, Any] = {}
    counts: dict[str, tuple[int, int]] = {}
    for index, (name, use_scores) in enumerate((("matched", True), ("unmatched", False))):
        contacted = _run_arm(engine, ids=ids, use_scores=use_scores, name=name, now=now)
        rng = np.random.default_rng(seed * 10 + index)
        draws = rng.random(len(contacted))
        accepted = int(sum(u < acceptance[m][c] for u, (m, c) in zip(draws, sorted(contacted.items()), strict=True)))
        n = len(contacted)
        low, high = _wilson(accepted, n) if n else (0.0, 0.0)
        mix: dict[str, int] = {}
        for c in contacted.values():
            mix[c] = mix.get(c, 0) + 1
        arms[name] = {"contacted": n, "accepted": accepted, "acceptance": accepted / n if n else None,
                      "ci95": [low, high], "channels": dict(sorted(mix.items())),
                      "on_true_preference": sum(preferred[m] == c for m, c in contacted.items()) / n if n else None}
        counts[name] = (accepted, n)
    uplift = conversion_uplift(treatment_converted=counts["matched"][0], treatment_size=counts["matched"][1],
                               control_converted=counts["unmatched"][0], control_size=counts["unmatched"][1])
    return {"members": len(ids), "seed": seed, "now": now.isoformat(), "arms": arms,
            "difference": {"uplift": uplift.uplift, "ci95": [uplift.ci_low, uplift.ci_high]}}
