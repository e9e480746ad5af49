"""Ids and keys sent to PostgreSQL as one array literal arrive as they were sent."""

import sqlalchemy as sa

from domain.db import array_literal


def test_an_array_literal_round_trips_awkward_text_and_ids(session):
    texts = ["plain", "", "NULL", "a,b", 'say "hi"', "back\\slash", "{braces}", " spaced ", "王小明", "tab\tnl\n",
             "\\\"", "'quote'"]
    assert session.scalar(sa.text("SELECT CAST(:v AS text[])"), {"v": array_literal(texts)}) == texts
    ids = [1, 20_000, 9_007_199_254_740_993, 0, -5]
    assert session.scalar(sa.text("SELECT CAST(:v AS bigint[])"), {"v": array_literal(ids)}) == ids
    assert session.scalar(sa.text("SELECT CAST(:v AS bigint[])"), {"v": array_literal([])}) == []
