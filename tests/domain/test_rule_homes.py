"""One implementation of every rule: each rule's SQL form (built in the rule's home) gives the same answer as
its Python form on generated members in PostgreSQL. docs/rules.md lists the rules and their homes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from domain.contact_policy import service as gate
from domain.contact_policy.rules import channel_choice_sql, choose_channel
from domain.members.models import ContactChannel, Member
from domain.members.service import set_channel_reachability
from domain.settings import get_settings
from tests.factories import make_member

NOW = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
MESSAGE_CHANNELS = ("sms", "email", "app", "wechat")
PROFILES = {"only_sms": {"sms"}, "only_email": {"email"}, "only_app": {"app"}, "only_wechat": {"wechat"},
            "none": set(), "sms_and_wechat": {"sms", "wechat"}, "all": set(MESSAGE_CHANNELS) | {"phone"}}


def _generated_members(session: Session, rng: random.Random, per_profile: int = 12) -> list[tuple[Member, str]]:
    """Members of every consent profile with random preferred channels, missing addresses, opt-outs and
    channels marked unreachable."""
    made = []
    for profile, granted in PROFILES.items():
        for i in range(per_profile):
            consents = {ContactChannel(c): True for c in granted}
            if rng.random() < 0.3:
                consents[ContactChannel(rng.choice(MESSAGE_CHANNELS))] = False  # an opt-out
            member = make_member(
                session, now=NOW, consents=consents,
                preferred_channel=rng.choice([None, None, *[ContactChannel(c) for c in (*MESSAGE_CHANNELS, "phone")]]),
                email=f"m{profile}{i}@example.com" if rng.random() < 0.7 else None,
                wechat_openid=f"o-{profile}-{i}-{rng.random()}" if rng.random() < 0.7 else None)
            if rng.random() < 0.25:
                set_channel_reachability(session, member_id=member.id, channel=ContactChannel(rng.choice(
                    MESSAGE_CHANNELS)), reachable=False, reason="bounced", now=NOW)
            made.append((member, profile))
    return made


def _python_choice(session: Session, member: Member, scores: dict[str, float] | None) -> str | None:
    consents = {str(c): str(s) for c, s in gate.consents_of(session, member_id=member.id).items()}
    unreachable = {str(c) for c in gate.unreachable_channels(session, member_id=member.id)}
    return gate.channel_for(member, consents=consents, unreachable=unreachable, scores=scores)


def test_channel_choice_sql_and_python_agree_on_every_consent_profile(session):
    rng = random.Random(16)
    made = _generated_members(session, rng)
    ids = [m.id for m, _ in made]
    sql = gate.choose_channels(session, member_ids=ids)
    by_profile: dict[str, set[str | None]] = {}
    for member, profile in made:
        assert sql[member.id] == _python_choice(session, member, None), (profile, member.id)
        by_profile.setdefault(profile, set()).add(sql[member.id])
    # A single-channel profile only ever gets that channel or nobody; no consent at all: nobody, never WeChat.
    for profile in ("only_sms", "only_email", "only_app", "only_wechat"):
        assert by_profile[profile] <= {profile.removeprefix("only_"), None}
    assert by_profile["only_sms"] >= {"sms"} and by_profile["only_app"] >= {"app"}
    assert by_profile["none"] == {None}


def test_channel_choice_with_scores_agrees_between_sql_and_python(session):
    rng = random.Random(18)
    made = _generated_members(session, rng, per_profile=6)
    scores = {m.id: {c: round(rng.random(), 2) for c in MESSAGE_CHANNELS if rng.random() < 0.6} for m, _ in made}
    rows = [(member_id, channel, score) for member_id, per in scores.items() for channel, score in per.items()]
    table = sa.values(sa.column("member_id", sa.BigInteger), sa.column("channel", sa.String),
                      sa.column("score", sa.Float), name="scores").data(rows or [(0, "sms", 0.0)])
    members_table = Member.__table__
    chosen = channel_choice_sql(members_table, order=get_settings().channel_order, scores=table)
    sql = dict(session.execute(sa.select(members_table.c.id, chosen).where(
        members_table.c.id.in_([m.id for m, _ in made]))).all())
    for member, _ in made:
        assert sql[member.id] == _python_choice(session, member, scores[member.id]), member.id


def test_channel_choice_rule_table():
    order = ("wechat", "app", "email", "sms")
    everything = set(order)
    assert choose_channel(preferred="sms", consented=everything, reachable=everything, order=order) == "sms"
    # Preferred but not consented: the first consented reachable one in order.
    assert choose_channel(preferred="sms", consented={"email", "app"}, reachable=everything, order=order) == "app"
    # Scores beat the configured order, the preferred channel beats scores.
    assert choose_channel(preferred=None, consented=everything, reachable=everything, order=order,
                          scores={"email": 0.9, "wechat": 0.1}) == "email"
    assert choose_channel(preferred="sms", consented=everything, reachable=everything, order=order,
                          scores={"email": 0.9}) == "sms"
    # Consented but unreachable (no openid, or marked): not chosen; nothing left: None, never a default.
    assert choose_channel(preferred="wechat", consented={"wechat"}, reachable={"sms"}, order=order) is None
    # A phone call is never chosen for a message step.
    assert choose_channel(preferred="phone", consented={"phone"}, reachable={"phone"}, order=order) is None


def test_complaint_cooldown_sql_and_python_agree(session):
    from domain.contact_policy.models import Complaint
    from domain.contact_policy.rules import (
        COMPLAINT_COOLDOWN_SQL,
        complaint_cooldown_params,
        in_complaint_cooldown,
        policy_from_settings,
    )

    rng = random.Random(90)
    policy = policy_from_settings(get_settings())
    latest: dict[int, datetime | None] = {}
    for _ in range(80):
        member = make_member(session, now=NOW)
        times = [NOW + timedelta(days=rng.uniform(-120, 5)) for _ in range(rng.choice([0, 0, 1, 2, 3]))]
        # Edges: exactly at the end of the cool-down, and just inside it.
        if rng.random() < 0.2:
            times.append(NOW - policy.complaint_cooldown + rng.choice([timedelta(0), timedelta(seconds=1)]))
        for at in times:
            session.add(Complaint(member_id=member.id, category="x", actor="t", opened_at=at))
        latest[member.id] = max(times, default=None)
    session.flush()
    sql = dict(session.execute(sa.text(
        f"SELECT m.id, {COMPLAINT_COOLDOWN_SQL.format(member_id='m.id')} FROM members m WHERE m.id = ANY(:ids)"),
        {"ids": list(latest), **complaint_cooldown_params(now=NOW, policy=policy)}).all())
    for member_id, last in latest.items():
        assert sql[member_id] == in_complaint_cooldown(last, now=NOW, cooldown=policy.complaint_cooldown), member_id
    assert any(sql.values()) and not all(sql.values())


def test_caps_sql_and_python_agree_with_tier_overrides(session):
    from domain.contact_policy.rules import Cap, Policy, Purpose, caps_full_sql, full_caps, policy_from_settings
    from domain.touchpoints.models import COUNTED

    rng = random.Random(30)
    base = policy_from_settings(get_settings())
    policy = Policy(quiet_start=base.quiet_start, quiet_end=base.quiet_end, onboarding=base.onboarding,
                    complaint_cooldown=base.complaint_cooldown, max_deferral=base.max_deferral,
                    caps=(*base.caps, Cap("calls_short", frozenset({"marketing", "care"}), frozenset({"phone"}), 2,
                                          timedelta(days=3))),
                    tier_overrides={"A": {"marketing_calls": 2}, "B": {"calls_short": 0}})
    touches: dict[int, list[tuple[str, str, str, datetime]]] = {}
    tiers: dict[int, str] = {}
    for i in range(120):
        member = make_member(session, now=NOW)
        tiers[member.id] = rng.choice("ABCD")
        session.execute(sa.text("UPDATE members SET tier = :t WHERE id = :m"), {"t": tiers[member.id], "m": member.id})
        rows = []
        busy = rng.random() < 0.2  # a burst of recent touches, so the 4-in-7-days message cap fills too
        for j in range(rng.choice([0, 1, 2, 3, 5, 8]) + (10 if busy else 0)):
            at = NOW + timedelta(days=rng.uniform(-6, 1) if busy and j >= 3 else
                                 rng.choice([rng.uniform(-35, 10), rng.choice([-30, -3, 0, 3, 30])]))
            if busy and j >= 3:
                rows.append((rng.choice(["sms", "wechat"]), "marketing", rng.choice(["queued", "sent", "failed"]), at))
            else:
                rows.append((rng.choice(["phone", "sms", "wechat"]), rng.choice(["marketing", "care", "service"]),
                             rng.choice(["queued", "sending", "sent", "failed", "rejected", "suppressed"]), at))
            session.execute(sa.text("""
                INSERT INTO touches (member_id, channel, purpose, source, idempotency_key, template, variables,
                                     decision, reasons, status, send_at, requested_at, attempts)
                VALUES (:m, :ch, :pu, 'test', :key, 't', '{}', 'approved', '{}', :st, :at, :at, 0)"""),
                {"m": member.id, "ch": rows[-1][0], "pu": rows[-1][1], "st": rows[-1][2], "at": at,
                 "key": f"{i}:{j}"})
        touches[member.id] = rows
    counted = {s.value for s in COUNTED}
    for channel, purpose in (("phone", Purpose.MARKETING), ("phone", Purpose.CARE), ("sms", Purpose.MARKETING)):
        expression, params = caps_full_sql(policy, channel=channel, purpose=purpose, member_id="m.id", tier="m.tier")
        sql = dict(session.execute(sa.text(f"SELECT m.id, {expression} FROM members m WHERE m.id = ANY(:ids)"),
                                   {**params, "cap_at": NOW, "ids": list(touches)}).all())
        for member_id, rows in touches.items():
            caps = policy.caps_for(tiers[member_id], channel, purpose)
            planned = {c.name: [at for ch, pu, st, at in rows if st in counted and ch in c.channels
                                and pu in c.purposes] for c in caps}
            full = full_caps(planned, NOW, caps)
            assert sql[member_id] == (f"cap:{full[0]}" if full else None), (channel, purpose, member_id, rows)
        assert any(sql.values()), (channel, purpose)


def test_qualifying_spend_sql_and_python_agree_at_the_window_edges(session):
    from domain.points.rules import add_months
    from domain.tiers.rules import QUALIFYING_SPEND_SQL, qualifying_spend, spend_params

    rng = random.Random(12)
    months = get_settings().tier_window_months
    orders: dict[int, list[tuple[datetime, int]]] = {}
    for i in range(60):
        member = make_member(session, now=NOW - timedelta(days=800))
        rows = []
        for j in range(rng.choice([0, 1, 3, 6])):
            at = rng.choice([add_months(NOW, -months), add_months(NOW, -months) + timedelta(seconds=1), NOW,
                             NOW + timedelta(seconds=1), NOW + timedelta(days=rng.uniform(-500, 5))])
            amount, refunded = rng.randrange(100, 900_000), 0
            if rng.random() < 0.3:
                refunded = rng.randrange(0, amount)
            session.execute(sa.text("""
                INSERT INTO orders (order_id, member_id, amount_fen, refunded_fen, channel, items, occurred_at,
                                    points_earned, recorded_at, payload_hash, tier_at_order, points_reversed)
                VALUES (:o, :m, :a, :r, 'store', '[]', :at, 0, :at, 'x', 'D', 0)"""),
                {"o": f"spend-{i}-{j}", "m": member.id, "a": amount, "r": refunded, "at": at})
            rows.append((at, amount - refunded))
        orders[member.id] = rows
    sql = dict(session.execute(sa.text(
        f"SELECT m.id, {QUALIFYING_SPEND_SQL.format(member_id='m.id')} FROM members m WHERE m.id = ANY(:ids)"),
        {"ids": list(orders), **spend_params(NOW, months)}).all())
    for member_id, rows in orders.items():
        assert sql[member_id] == qualifying_spend(rows, now=NOW, months=months), member_id


def test_the_order_function_counts_spend_with_the_rules_own_sql(session):
    # The order function holds the rule's statement (migration 1703) instead of EXECUTEing it per order: a
    # change of QUALIFYING_SPEND_SQL must come with a migration replacing the function, or this fails.
    from domain.tiers.service import QUALIFYING_SPEND_IN_ORDER_FUNCTION

    source = session.execute(sa.text("SELECT prosrc FROM pg_proc WHERE proname = 'loyalty_record_order'")
                             ).scalars().all()
    assert len(source) == 1
    assert " ".join(QUALIFYING_SPEND_IN_ORDER_FUNCTION.split()) + " INTO v_spend;" in " ".join(source[0].split())
    assert "EXECUTE" not in source[0]


def test_dormancy_sql_and_python_agree(session):
    from domain.members.rules import BECOMES_DORMANT_SQL, becomes_dormant, dormancy_params

    rng = random.Random(180)
    days = get_settings().dormancy_days
    made = {}
    for _ in range(60):
        joined = NOW - timedelta(days=rng.choice([days, days + 1, rng.uniform(0, 400)]))
        member = make_member(session, now=joined, joined_at=joined)
        last = rng.choice([None, NOW - timedelta(days=days), NOW - timedelta(days=days, seconds=-1),
                           NOW - timedelta(days=rng.uniform(0, 400))])
        status = rng.choice(["active", "active", "dormant", "lapsed", "closed"])
        session.execute(sa.text("UPDATE members SET last_purchase_at = :l, status = :s WHERE id = :m"),
                        {"l": last, "s": status, "m": member.id})
        made[member.id] = (status, last, joined)
    sql = dict(session.execute(sa.text(
        f"SELECT m.id, {BECOMES_DORMANT_SQL.format(members='m')} FROM members m WHERE m.id = ANY(:ids)"),
        {"ids": list(made), **dormancy_params(as_of=NOW, days=days)}).all())
    for member_id, (status, last, joined) in made.items():
        assert sql[member_id] == becomes_dormant(status=status, last_purchase_at=last, joined_at=joined, as_of=NOW,
                                                 days=days), member_id
    assert any(sql.values()) and not all(sql.values())


def test_downgrade_due_sql_and_python_agree(session):
    from domain.tiers.rules import DOWNGRADE_DUE_SQL, downgrade_due, downgrade_params

    grace = timedelta(days=get_settings().tier_downgrade_grace_days)
    cases = [None, NOW - grace, NOW - grace + timedelta(seconds=1), NOW - grace - timedelta(days=3), NOW,
             NOW + timedelta(days=1), NOW - timedelta(days=400)]
    rows = session.execute(sa.text(
        f"SELECT {DOWNGRADE_DUE_SQL.format(below_since='b.at')} FROM unnest(CAST(:cases AS timestamptz[])) "
        "WITH ORDINALITY AS b(at, n) ORDER BY b.n"), {"cases": cases, **downgrade_params(as_of=NOW, grace=grace)})
    assert list(rows.scalars()) == [downgrade_due(below_since=c, as_of=NOW, grace=grace) for c in cases]


def test_rebate_brackets_sql_and_python_agree_and_come_from_settings(session):
    import json

    from domain.rebates.rules import REBATE_FEN_SQL, REBATE_RATE_SQL, brackets_fen, rebate_for

    brackets = brackets_fen(get_settings().rebate_brackets_yuan)
    assert brackets == [[100_000, 300], [500_000, 500]]
    rng = random.Random(3)
    spends = [0, 99_999, 100_000, 100_001, 499_999, 500_000, 10**10, *[rng.randrange(0, 2_000_000) for _ in range(200)]]
    rate = REBATE_RATE_SQL.format(spend="s.spend")
    rows = session.execute(sa.text(
        f"SELECT {rate}, {REBATE_FEN_SQL.format(spend='s.spend', rate=rate)} "
        "FROM unnest(CAST(:spends AS bigint[])) WITH ORDINALITY AS s(spend, n) ORDER BY s.n"),
        {"spends": spends, "brackets": json.dumps(brackets)}).all()
    assert [tuple(r) for r in rows] == [rebate_for(s, brackets) for s in spends]


def test_quiet_hours_and_their_end_sql_and_python_agree_across_zones_and_dst_days(session):
    from datetime import time
    from zoneinfo import ZoneInfo

    from domain.contact_policy.rules import (
        in_quiet_hours,
        next_allowed_time,
        next_allowed_time_sql,
        quiet_hours_sql,
    )

    zones = ["Asia/Shanghai", "Europe/London", "America/New_York", "Asia/Kolkata", "UTC"]
    # Every 15 minutes over London's and New York's spring-forward and fall-back days, plus the exact edges.
    days = [datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 10, 25, tzinfo=UTC)]
    moments = [day + timedelta(minutes=15 * i) for day in days for i in range(-8, 4 * 24 + 8)]
    moments += [datetime(2026, 3, 10, 9, 0, tzinfo=ZoneInfo("Europe/London")).astimezone(UTC),
                datetime(2026, 3, 10, 21, 0, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)
                - timedelta(microseconds=1)]
    for start, end in ((time(21, 0), time(9, 0)), (time(1, 30), time(6, 0))):  # over midnight, and within a day
        predicate, params = quiet_hours_sql(moment="c.at", timezone="z.tz", start=start, end=end)
        rows = session.execute(sa.text(
            f"SELECT c.at, z.tz, {predicate} FROM unnest(CAST(:ats AS timestamptz[])) AS c(at) "
            "CROSS JOIN unnest(CAST(:zones AS text[])) AS z(tz)"), {**params, "ats": moments, "zones": zones}).all()
        moved, _ = next_allowed_time_sql(moment="c.at", timezone="z.tz", start=start, end=end)
        rows = session.execute(sa.text(
            f"SELECT c.at, z.tz, {predicate}, {moved} FROM unnest(CAST(:ats AS timestamptz[])) AS c(at) "
            "CROSS JOIN unnest(CAST(:zones AS text[])) AS z(tz)"), {**params, "ats": moments, "zones": zones}).all()
        assert len(rows) == len(moments) * len(zones)
        for at, tz, quiet, allowed in rows:
            assert quiet == in_quiet_hours(at, tz, start, end), (at, tz, start, end)
            assert allowed == next_allowed_time(at, tz, start, end), (at, tz, start, end)
        assert any(r[2] for r in rows) and not all(r[2] for r in rows)


def test_decision_sql_and_decide_agree_on_generated_members(session):
    from domain.contact_policy.models import Complaint
    from domain.contact_policy.rules import Purpose, decide, decision_sql, policy_from_settings
    from domain.organisations import service as orgs
    from domain.organisations.models import OrganisationRole, RevenueClass

    rng = random.Random(17)
    policy = policy_from_settings(get_settings())
    quiet_co = orgs.create_organisation(session, name="Quiet Co", revenue_class=RevenueClass.KEY, now=NOW)
    orgs.update_organisation(session, organisation_id=quiet_co.id, changes={"do_not_contact": True,
                                                                          "do_not_contact_reason": "legal"}, now=NOW)
    # Three moments: quiet in London and New York only; quiet in Shanghai only; 09:00 in London to the microsecond.
    nows = [NOW, NOW + timedelta(hours=10), datetime(2026, 3, 2, 9, 0, tzinfo=UTC)]
    ids = []
    for i in range(90):
        joined = NOW - timedelta(days=3 if i % 15 == 0 else rng.choice([400, 400, 31, 30, 29, 3]))
        consents = {ContactChannel(c): rng.random() < 0.8 for c in (*MESSAGE_CHANNELS, "phone") if rng.random() < 0.7}
        member = make_member(session, now=joined, joined_at=joined, consents=consents,
                             timezone=rng.choice(["Asia/Shanghai", "Europe/London", "America/New_York"]),
                             email=f"g{i}@example.com" if rng.random() < 0.7 else None,
                             wechat_openid=f"o-g-{i}" if rng.random() < 0.7 else None)
        ids.append(member.id)
        session.execute(sa.text("UPDATE members SET status = :s, tier = :t, phone = CASE WHEN :nophone THEN NULL "
                                "ELSE phone END WHERE id = :m"),
                        {"s": rng.choice(["active"] * 8 + ["dormant", "closed"]), "t": rng.choice("ABCD"),
                         "nophone": rng.random() < 0.1, "m": member.id})
        if rng.random() < 0.2:  # marked unreachable; an empty reason does not block (the facts test its truth)
            set_channel_reachability(session, member_id=member.id, channel=ContactChannel(rng.choice(MESSAGE_CHANNELS)),
                                     reachable=False, reason=rng.choice(["bounced", ""]), now=NOW)
        if rng.random() < 0.2 or i % 15 == 0:  # every 15th a new joiner who complained: both rejections lift
            session.add(Complaint(member_id=member.id, category="x", actor="t",
                                  opened_at=NOW - timedelta(days=rng.choice([1, 89, 90, 91, 200]))))
        if rng.random() < 0.1:
            orgs.link_member(session, organisation_id=quiet_co.id, member_id=member.id,
                             role=OrganisationRole.EMPLOYEE, actor="t", now=NOW - timedelta(days=1))
        busy = i % 10 == 5  # four marketing messages in the last six days: the weekly cap is full until one leaves
        for j in range(4 if busy else rng.choice([0, 0, 1, 3, 4, 6])):  # recent and planned touches
            session.execute(sa.text("""
                INSERT INTO touches (member_id, channel, purpose, source, idempotency_key, template, variables,
                                     decision, reasons, status, send_at, requested_at, attempts)
                VALUES (:m, :ch, :pu, 'gen', :key, 't', '{}', 'approved', '{}', :st, :at, :at, 0)"""),
                {"m": member.id, "ch": rng.choice(MESSAGE_CHANNELS),
                 "pu": "marketing" if busy else rng.choice(["marketing", "marketing", "care"]),
                 "st": "sent" if busy else rng.choice(["queued", "sent", "sent", "failed"]), "key": f"{i}:{j}",
                 "at": NOW + timedelta(days=rng.uniform(-6, 0) if busy else rng.uniform(-8, 3))})
    session.flush()
    session.expire_all()
    members = gate.get_members(session, member_ids=ids)
    verdicts: set[str] = set()
    sql_verdicts: set[str | None] = set()
    for now in nows:
        for channel in (*MESSAGE_CHANNELS, "phone"):
            for purpose in Purpose:
                decision, params = decision_sql(policy, channel=channel, purpose=purpose, now=now,
                                                account_do_not_contact=orgs.DO_NOT_CONTACT_SQL)
                sql = {r[0]: tuple(r[1:]) for r in session.execute(sa.text(
                    f"SELECT m.id, d.verdict, d.reasons, d.send_at, d.next_allowed_at FROM members m "
                    f"CROSS JOIN LATERAL ({decision}) d WHERE m.id = ANY(:ids)"), {**params, "ids": ids})}
                facts = gate._load_facts(session, [(m, ContactChannel(channel), purpose) for m in members], now)
                for member, fact in zip(members, facts, strict=True):
                    python = decide(facts=fact, channel=channel, purpose=purpose, policy=policy, now=now)
                    verdicts.add(python.verdict)
                    verdict, reasons, send_at, next_allowed_at = sql[member.id]
                    if verdict is None:  # only a cap full past the deferral horizon is left to decide
                        assert python.verdict == "rejected" and all(r.startswith("cap") for r in python.reasons), (
                            now, channel, purpose, member.id, python)
                    else:
                        assert (verdict, tuple(reasons), send_at, next_allowed_at) == (
                            python.verdict, python.reasons, python.send_at, python.next_allowed_at), (
                            now, channel, purpose, member.id, fact)
                answers = {v for v, *_ in sql.values()}
                sql_verdicts.update(answers)
                assert {"approved", "rejected"} <= answers, (now, channel, purpose)
                assert "deferred" in answers or purpose == Purpose.SERVICE, (now, channel, purpose)
    assert verdicts == {"approved", "deferred", "rejected"}
    assert sql_verdicts >= {"approved", "deferred", "rejected"}  # deferrals for quiet hours and full caps included


def test_campaign_text_rendered_in_sql_and_python_agree(session):
    from domain.campaigns.rules import campaign_variables, campaign_variables_sql
    from domain.journeys.rules import render_template, render_template_sql

    texts = ["{name}, a {tier}-tier offer", "Hi {name}! {{not a variable}} {tier}{tier}", "{points} for {name}",
             "no variables at all", "", "{name}", "单身 {name}，{tier} 级会员专享 {{优惠}}", "100% off for {tier}'s"]
    names = [None, "", "Li Lei", "{tier}", "O'Brien", "王小明", "  ", "a\\b"]
    made = []
    for i, name in enumerate(names):
        member = make_member(session, now=NOW, name=name)
        session.execute(sa.text("UPDATE members SET tier = :t, name = :n WHERE id = :m"),
                        {"t": "ABCD"[i % 4], "n": name, "m": member.id})
        made.append((member.id, name, "ABCD"[i % 4]))
    for k, text in enumerate(texts):
        rendered = render_template_sql(text, campaign_variables_sql("m"), prefix=f"t{k}")
        assert rendered is not None, text
        expression, params = rendered
        sql = dict(session.execute(sa.text(f"SELECT m.id, {expression} FROM members m WHERE m.id = ANY(:ids)"),
                                   {**params, "ids": [i for i, _, _ in made]}).all())
        for member_id, name, tier in made:
            assert sql[member_id] == render_template(text, campaign_variables(name=name, tier=tier)), (text, name)
    # A format spec or conversion has no SQL form: such a text goes through the Python gate.
    assert render_template_sql("{name!r} {tier:>3}", campaign_variables_sql("m")) is None
