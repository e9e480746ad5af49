"""The demo seeder builds a consistent population."""

import re

import sqlalchemy as sa
from sqlmodel import Session

from cli.seed import seed
from domain.members.rules import parse_member_code
from domain.points.service import verify_points


def test_seeding_builds_members_with_history_that_the_ledger_check_accepts(committed_engine):
    counts = seed(committed_engine, members=2_000, months=24)
    assert counts["members"] == 2_000 and counts["orders"] >= 2_000 and counts["points accounts"] == 2_000
    with committed_engine.connect() as conn:
        phones, distinct, codes = conn.execute(sa.text(
            "SELECT count(phone), count(DISTINCT phone), array_agg(member_code) FROM members")).one()
        assert phones == distinct == 2_000
        assert all(parse_member_code(c) for c in codes)
        assert all(re.match(r"^\+86139\d{8}$", p) for p in conn.scalars(sa.text("SELECT phone FROM members")))
        assert conn.scalar(sa.text("SELECT count(*) FROM members WHERE wechat_openid IS NOT NULL")) > 400
        assert conn.scalar(sa.text("SELECT count(DISTINCT tier) FROM members")) >= 3
        assert conn.scalar(sa.text("SELECT count(*) FROM member_consents")) > 2_000
    with Session(committed_engine) as session:
        assert verify_points(session) == []
    more = seed(committed_engine, members=100, months=3, seed=7)  # seeding again adds, never collides
    assert more["members"] == 100
