"""Channel usage facts and preference scores: ingest, derive, score, and the score source other concepts use.

Scoring is set-based: the usage and feature arrays are read with ``COPY … TO STDOUT`` into NumPy, the entropy
weights and the logistic regression run over whole arrays, and the scores go back with ``COPY`` and one
upsert. There is no Python loop over members.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col

from domain.crm import usage as crm_usage
from domain.errors import InvalidInput
from domain.members.models import Member
from domain.orders import usage as order_usage
from domain.scores import rules
from domain.scores.models import PRODUCT_SOURCE, ChannelScore, ChannelUsageFact, ScoreModel
from domain.settings import get_settings
from domain.touchpoints import usage as touch_usage
from domain.wechat import usage as wechat_usage

KIND_TO_CHANNEL: dict[str, str] = {**rules.ORDER_CHANNELS, **rules.INTEREST_SOURCES,
                                   **{c: c for c in rules.CHANNELS}}
"""Every way the product names a channel (an order's channel, an interest clue's source, a touch's channel)."""


# --- facts -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UsageRow:
    member_id: int
    channel: str
    day: date
    transactions: int


def ingest_usage(session: Session, *, source: str, rows: Sequence[UsageRow], now: datetime) -> dict[str, int]:
    """Store a batch of usage facts from another system; sending the same batch again changes nothing."""
    if source == PRODUCT_SOURCE:
        raise InvalidInput(f"source {PRODUCT_SOURCE!r} is reserved for facts derived from the product's own records",
                           code="reserved_source")
    unknown_channels = sorted({r.channel for r in rows} - set(rules.CHANNELS))
    if unknown_channels:
        raise InvalidInput("unknown channel", code="invalid_channel",
                           details={"channels": unknown_channels, "allowed": list(rules.CHANNELS)})
    keys = {(r.member_id, r.channel, r.day) for r in rows}
    if len(keys) != len(rows):
        raise InvalidInput("a batch names the same member, channel and day twice", code="duplicate_fact")
    ids = sorted({r.member_id for r in rows})
    known = set(session.scalars(sa.select(col(Member.id)).where(col(Member.id) == sa.any_(sa.literal(ids)))))
    missing = [i for i in ids if i not in known]
    if missing:
        raise InvalidInput("unknown members", code="unknown_member", details={"member_ids": missing[:50]})
    if not rows:
        return {"received": 0, "changed": 0}
    stmt = insert(ChannelUsageFact).values([
        {"member_id": r.member_id, "channel": r.channel, "day": r.day, "source": source,
         "transactions": r.transactions, "recorded_at": now} for r in rows])
    stmt = stmt.on_conflict_do_update(
        index_elements=["member_id", "channel", "day", "source"],
        set_={"transactions": stmt.excluded.transactions, "recorded_at": stmt.excluded.recorded_at},
        where=col(ChannelUsageFact.transactions) != stmt.excluded.transactions)
    changed = len(session.execute(stmt.returning(col(ChannelUsageFact.member_id))).all())
    return {"received": len(rows), "changed": changed}


def _instant(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def derive_usage_facts(session: Session, *, start: date, end: date, now: datetime) -> int:
    """Derive usage facts for days in [start, end) from what the product records: orders' channels, answered
    calls and agents' notes, interest clues, touches answered or clicked, WeChat interactions.

    Idempotent: a day's count is the larger of what is stored and what is seen now (a WeChat follower keeps
    only their latest interaction, so an earlier run may have seen more than today's records show).
    """
    tz = get_settings().program_timezone
    # A day is a day in the program's timezone, so the window's edges are widened by a day and trimmed below.
    lo_wide, hi_wide = _instant(start) - timedelta(days=1), _instant(end) + timedelta(days=1)
    used = sa.union_all(order_usage.channel_use(lo_wide, hi_wide), crm_usage.channel_use(lo_wide, hi_wide),
                        touch_usage.channel_use(lo_wide, hi_wide), wechat_usage.channel_use(lo_wide, hi_wide)
                        ).subquery("used")
    kinds = sa.values(sa.column("kind", sa.String), sa.column("channel", sa.String), name="kinds").data(
        list(KIND_TO_CHANNEL.items()))
    member_id, kind, at = list(used.c)
    day = sa.cast(sa.func.timezone(tz, at), sa.Date)
    facts = (sa.select(member_id, kinds.c.channel, day.label("day"), sa.literal(PRODUCT_SOURCE),
                       sa.func.count(), sa.literal(now))
             .select_from(used.join(kinds, kinds.c.kind == sa.func.lower(kind)))
             .where(day >= start, day < end)
             .group_by(member_id, kinds.c.channel, day))
    stmt = insert(ChannelUsageFact).from_select(
        ["member_id", "channel", "day", "source", "transactions", "recorded_at"], facts)
    stmt = stmt.on_conflict_do_update(
        index_elements=["member_id", "channel", "day", "source"],
        set_={"transactions": stmt.excluded.transactions, "recorded_at": stmt.excluded.recorded_at},
        where=col(ChannelUsageFact.transactions) < stmt.excluded.transactions)
    written = stmt.returning(col(ChannelUsageFact.member_id)).cte("written")
    return int(session.scalar(sa.select(sa.func.count()).select_from(written)) or 0)


def allow_long_statements(session: Session) -> None:
    """Lift the service's statement timeout for this transaction: scoring is a few whole-population statements."""
    session.execute(sa.text(f"SET LOCAL statement_timeout = {int(get_settings().score_statement_timeout_ms)}"))


# --- reading arrays -------------------------------------------------------------------------------------

def copy_numeric(session: Session, query: sa.Select[Any] | sa.TextClause, params: dict[str, Any] | None = None,
                 *, columns: int) -> NDArray[np.float64]:
    """Run ``query`` through ``COPY … TO STDOUT`` and return its (all numeric) rows as one float array."""
    conn = session.connection()
    if isinstance(query, sa.TextClause):
        compiled = query.bindparams(**(params or {})).compile(dialect=conn.dialect,
                                                             compile_kwargs={"literal_binds": True})
    else:
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    raw: Any = conn.connection.dbapi_connection
    buf = io.BytesIO()
    with raw.cursor() as cur, cur.copy(f"COPY ({compiled}) TO STDOUT") as copy:
        for chunk in copy:
            buf.write(chunk)
    data = buf.getvalue()
    if not data:
        return np.zeros((0, columns))
    values = np.array(data.replace(b"\\N", b"nan").split(), dtype=np.float64)
    return values.reshape(-1, columns)


USAGE_SQL = """
SELECT member_id, channel_index, count(DISTINCT date_trunc('month', day)) AS months_used,
       count(*) AS days_used, sum(transactions) AS transactions
FROM (SELECT f.member_id, array_position(CAST(:channels AS text[]), f.channel) - 1 AS channel_index,
             f.day,
             sum(f.transactions) AS transactions
      FROM channel_usage_facts f JOIN members m ON m.id = f.member_id
      WHERE f.day >= :start AND f.day < :end AND m.status <> 'closed'
      GROUP BY f.member_id, f.channel, f.day) d
WHERE channel_index IS NOT NULL
GROUP BY member_id, channel_index ORDER BY member_id
"""


@dataclass
class Usage:
    member_ids: NDArray[np.int64]
    values: NDArray[np.float64]
    """(members × channels × indicators), indicators as in ``rules.INDICATORS``."""


def read_usage(session: Session, *, start: date, end: date) -> Usage:
    """Months used, days used and transactions per member and channel in [start, end), for members with any."""
    rows = copy_numeric(session, sa.text(USAGE_SQL).bindparams(
        sa.bindparam("channels", list(rules.CHANNELS), type_=sa.ARRAY(sa.String))), {"start": start, "end": end},
        columns=5)
    member_ids, position = np.unique(rows[:, 0].astype(np.int64), return_inverse=True)
    values = np.zeros((len(member_ids), len(rules.CHANNELS), len(rules.INDICATORS)))
    values[position, rows[:, 1].astype(np.int64)] = rows[:, 2:5]
    return Usage(member_ids, values)


FEATURE_SQL = """
SELECT m.id,
       extract(epoch FROM (:as_of - m.joined_at)) / 86400.0 AS tenure_days,
       coalesce(s.spend_fen, 0) / 100.0 AS spend_yuan,
       coalesce(s.orders, 0) AS orders,
       coalesce(a.answered, 0) AS answered,
       coalesce(array_position(CAST(:tiers AS text[]), m.tier), 0) AS tier,
       CASE WHEN m.birthday IS NULL THEN 0
            ELSE width_bucket(extract(year FROM age(CAST(:as_of AS date), m.birthday)),
                              CAST(:age_edges AS int[])) + 1 END AS age_band,
       coalesce(array_position(CAST(:cities AS text[]), m.city), 0) AS city,
       coalesce(array_position(CAST(:sources AS text[]), m.source_channel), 0) AS source_channel
FROM members m
LEFT JOIN ({spend}) s ON s.member_id = m.id
LEFT JOIN ({answered}) a ON a.member_id = m.id
WHERE m.status <> 'closed' AND m.joined_at < :as_of
ORDER BY m.id
"""

TIERS = ("D", "C", "B", "A")
SOURCE_NAMES = ("campaign_form", "purchase", "wechat", "app", "web", "call_center", "store", "referral", "import")
MAX_CITIES = 20


@dataclass
class Features:
    member_ids: NDArray[np.int64]
    matrix: NDArray[np.float64]
    spec: rules.FeatureSpec


def read_features(session: Session, *, as_of: datetime, months: int = 12) -> Features:
    """The model's inputs for every member: tenure, spend, orders (activity), calls answered over the last
    ``months``, tier, age band, city (the most common ones), where they came from."""
    start = _instant(rules.add_months(as_of.date(), -months))
    common = (sa.select(col(Member.city)).where(col(Member.city).is_not(None)).group_by(col(Member.city))
              .order_by(sa.func.count().desc(), col(Member.city)).limit(MAX_CITIES))
    cities: tuple[str, ...] = tuple(c for c in session.scalars(common) if c)
    dialect = session.connection().dialect
    spend = order_usage.spend_and_orders(start, as_of).element.compile(  # type: ignore[attr-defined]
        dialect=dialect, compile_kwargs={"literal_binds": True})
    answered = crm_usage.contacts_answered(start, as_of).element.compile(  # type: ignore[attr-defined]
        dialect=dialect, compile_kwargs={"literal_binds": True})
    query = sa.text(FEATURE_SQL.format(spend=spend, answered=answered)).bindparams(
        sa.bindparam("tiers", list(TIERS), type_=sa.ARRAY(sa.String)),
        sa.bindparam("age_edges", list(rules.AGE_BAND_EDGES), type_=sa.ARRAY(sa.Integer)),
        sa.bindparam("cities", list(cities), type_=sa.ARRAY(sa.String)),
        sa.bindparam("sources", list(SOURCE_NAMES), type_=sa.ARRAY(sa.String)),
        sa.bindparam("as_of", as_of, type_=sa.DateTime(timezone=True)))
    rows = copy_numeric(session, query, columns=9)
    spec = rules.FeatureSpec(numeric=("tenure_days", "spend_yuan", "orders", "answered"),
                             categories={"tier": TIERS, "age_band": rules.AGE_BANDS,
                                         "city": ("other", *cities), "source_channel": ("other", *SOURCE_NAMES)})
    categorical: dict[str, list[str]] = {
        "tier": [("?", *TIERS)[int(i)] for i in rows[:, 5]] if len(rows) else [],
        "age_band": [rules.AGE_BANDS[int(i)] for i in rows[:, 6]] if len(rows) else [],
        "city": [("other", *cities)[int(i)] for i in rows[:, 7]] if len(rows) else [],
        "source_channel": [("other", *SOURCE_NAMES)[int(i)] for i in rows[:, 8]] if len(rows) else [],
    }
    return Features(rows[:, 0].astype(np.int64), rules.encode(spec, rows[:, 1:5], categorical), spec)


# --- scoring ----------------------------------------------------------------------------------------------

@dataclass
class ScoreResult:
    member_ids: NDArray[np.int64]
    scores: NDArray[np.float64]
    """(members × channels)."""
    from_usage: NDArray[np.bool_]
    """True: scored from the member's own history; False: by the logistic model."""
    baseline: NDArray[np.int64]
    """Channel index the baseline rule picks, -1 for none."""
    weights: NDArray[np.float64]
    model: dict[str, Any] = field(default_factory=dict)


def fit_preference_model(x: NDArray[np.float64], mix: NDArray[np.float64], *, seed: int,
                         max_rows: int = 200_000) -> dict[str, Any]:
    """A multinomial logistic regression predicting a member's channel mix from their attributes.

    Trained on members with history: each member counts once per channel they use, weighted by that channel's
    share of their usage (``mix``, members × channels), so the model's probabilities are an expected channel mix
    on the same scale as a usage score. At most ``max_rows`` members, drawn with ``seed`` (the same data and
    seed give the same coefficients).
    """
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    rows = np.arange(len(mix)) if len(mix) <= max_rows else np.sort(rng.choice(len(mix), max_rows, replace=False))
    mean = x[rows].mean(axis=0)
    std = x[rows].std(axis=0)
    std[std == 0] = 1.0
    member, channel = np.nonzero(mix[rows] > 0)
    weight = mix[rows][member, channel]
    classes = np.unique(channel)
    if len(classes) < 2:  # one channel for everybody: nothing to learn, predict it
        return {"classes": [int(c) for c in classes], "mean": mean.tolist(), "std": std.tolist(),
                "intercept": [0.0], "coef": [[0.0] * x.shape[1]], "rows": int(len(rows))}
    model = LogisticRegression(C=1.0, max_iter=300, random_state=seed)
    model.fit((x[rows][member] - mean) / std, channel, sample_weight=weight)
    return {"classes": [int(c) for c in model.classes_], "mean": mean.tolist(), "std": std.tolist(),
            "intercept": model.intercept_.tolist(), "coef": model.coef_.tolist(), "rows": int(len(rows))}


def predict_preferences(model: dict[str, Any], x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-channel probabilities (members × channels) from a stored model — the same arithmetic as
    scikit-learn's ``predict_proba`` (softmax; a two-class fit is its sigmoid), so a stored model can score."""
    classes = model["classes"]
    out = np.zeros((len(x), len(rules.CHANNELS)))
    if len(classes) == 1:
        out[:, classes[0]] = 1.0
        return out
    z = (x - np.asarray(model["mean"])) / np.asarray(model["std"])
    logits = z @ np.asarray(model["coef"]).T + np.asarray(model["intercept"])
    if len(classes) == 2:
        p1 = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        out[:, classes[0]], out[:, classes[1]] = 1.0 - p1, p1
        return out
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    out[:, classes] = e / e.sum(axis=1, keepdims=True)
    return out


def compute_scores(session: Session, *, start: date, end: date, seed: int) -> ScoreResult:
    """Score every member as of ``end``: entropy-weighted usage in [start, end) for those with history, the
    logistic model trained on them for the rest (and as the prior of members with little history).
    Reads only; writes nothing."""
    usage = read_usage(session, start=start, end=end)
    features = read_features(session, as_of=_instant(end))
    has_history = np.isin(features.member_ids, usage.member_ids)
    position = np.searchsorted(usage.member_ids, features.member_ids[has_history])
    composite, weights = rules.usage_composite(usage.values[position])
    n = len(features.member_ids)
    baseline = np.full(n, -1, dtype=np.int64)
    baseline[has_history] = rules.baseline_preferred(usage.values[position, :, 2])
    model: dict[str, Any] = {}
    prior = np.full((n, len(rules.CHANNELS)), 1.0 / len(rules.CHANNELS))
    if has_history.any():
        own_mix = rules.preference_scores(composite, prior[has_history], 0.0)
        model = fit_preference_model(features.matrix[has_history], own_mix, seed=seed)
        model["features"] = features.spec.names()
        prior = predict_preferences(model, features.matrix)
    strength = rules.prior_strength(composite)
    model["prior_strength"] = strength
    scores = prior.copy()
    scores[has_history] = rules.preference_scores(composite, prior[has_history], strength)
    return ScoreResult(features.member_ids, scores, has_history, baseline, weights, model)


def model_version(as_of: date, seed: int) -> str:
    return f"pref-{as_of:%Y%m%d}-s{seed}"


def score_members(session: Session, *, as_of: date, seed: int, now: datetime,
                  window_months: int | None = None) -> dict[str, Any]:
    """Refresh every member's channel scores as of ``as_of`` and store the model that made them.

    Rerunning at the same ``as_of`` and seed gives the same version and the same numbers."""
    months = window_months or get_settings().score_window_months
    start, end = rules.scoring_window(as_of, months)
    result = compute_scores(session, start=start, end=end, seed=seed)
    version = model_version(as_of, seed)
    model = result.model
    coefficients = {"classes": [rules.CHANNELS[c] for c in model.get("classes", [])],
                    "intercept": model.get("intercept", []), "coef": model.get("coef", [])}
    counts = {"members": int(len(result.member_ids)), "with_history": int(result.from_usage.sum()),
              "without_history": int((~result.from_usage).sum()), "training_rows": int(model.get("rows", 0))}
    stored = ScoreModel(version=version, window_start=start, window_end=end, seed=seed,
                        entropy_weights=dict(zip(rules.INDICATORS, map(float, result.weights), strict=True)),
                        features=model.get("features", []), coefficients=coefficients,
                        scaling={"mean": model.get("mean", []), "std": model.get("std", []),
                                 "prior_strength": model.get("prior_strength", 0.0)},
                        counts=counts, trained_at=now)
    session.merge(stored)
    session.flush()
    _write_scores(session, result, version=version, scored_on=as_of)
    return {"version": version, **counts}


def _write_scores(session: Session, result: ScoreResult, *, version: str, scored_on: date) -> None:
    conn = session.connection()
    conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS scores_in (member_id bigint, from_usage boolean, "
                         "baseline int, s0 float8, s1 float8, s2 float8, s3 float8, s4 float8, s5 float8) "
                         "ON COMMIT DROP")
    conn.exec_driver_sql("TRUNCATE scores_in")
    table = np.column_stack([result.member_ids, result.from_usage.astype(np.int64), result.baseline,
                             np.round(result.scores, 6)])
    buf = io.StringIO()
    np.savetxt(buf, table, fmt=["%d", "%d", "%d"] + ["%.6f"] * len(rules.CHANNELS), delimiter="\t")
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor() as cur, cur.copy("COPY scores_in FROM STDIN") as copy:
        copy.write(buf.getvalue())  # booleans as 1/0, which PostgreSQL reads
    channels = ", ".join(f"('{c}', {i})" for i, c in enumerate(rules.CHANNELS))
    scores = ", ".join(f"s{i}" for i in range(len(rules.CHANNELS)))
    session.execute(sa.text(f"""
        INSERT INTO channel_scores (member_id, channel, score, basis, baseline, model_version, scored_on)
        SELECT s.member_id, c.channel, (ARRAY[{scores}])[c.i + 1],
               CASE WHEN s.from_usage THEN 'usage' ELSE 'model' END, s.baseline = c.i, :version, :scored_on
        FROM scores_in s CROSS JOIN (VALUES {channels}) AS c(channel, i)
        ON CONFLICT (member_id, channel) DO UPDATE SET score = excluded.score, basis = excluded.basis,
            baseline = excluded.baseline, model_version = excluded.model_version, scored_on = excluded.scored_on
        """), {"version": version, "scored_on": scored_on})
    # Members closed since the last run keep no stale score.
    session.execute(sa.delete(ChannelScore).where(col(ChannelScore.model_version) != version))


# --- the score source (what the channel-choice rule and the CRM lookup read) ------------------------------

def score_source() -> sa.Select:  # type: ignore[type-arg]
    """(member_id, channel, score): the current preference scores, for the channel-choice rule's ``scores``."""
    return sa.select(col(ChannelScore.member_id), col(ChannelScore.channel), col(ChannelScore.score))


def scores_of(session: Session, *, member_id: int) -> dict[str, float]:
    """A member's current score per channel (empty before the first scoring run)."""
    rows = session.execute(score_source().where(col(ChannelScore.member_id) == member_id)).all()
    return {channel: float(score) for _, channel, score in rows}


SCORES_SQL = "(SELECT json_object_agg(channel, score) FROM channel_scores WHERE member_id = {member_id})"
"""The member's scores (channel → score) as a SQL piece, for one-statement reads such as the CRM picture."""

TOP_CHANNEL_SQL = """(SELECT json_build_object(
    'channel', s.channel, 'score', s.score, 'basis', s.basis, 'model_version', s.model_version,
    'scored_on', s.scored_on,
    'why', CASE WHEN s.basis = 'usage'
                THEN round(s.score * 100) || ' percent of their channel use in the last ' || :score_months
                     || ' months (with the model''s expectation for members like them) went through ' || s.channel
                     || CASE WHEN s.baseline THEN ', also the channel they used most often' ELSE '' END
                ELSE 'no channel use in the last ' || :score_months || ' months: the model ' || s.model_version
                     || ' expects ' || s.channel || ' from tenure, tier, age band, city, spend and where they joined'
           END)
  FROM channel_scores s WHERE s.member_id = {member_id} ORDER BY s.score DESC, s.channel LIMIT 1)"""
"""The member's top channel and why, as a SQL piece (parameter ``score_months``: ``piece_params()``)."""


def piece_params() -> dict[str, Any]:
    return {"score_months": get_settings().score_window_months}


def top_channel_of(session: Session, *, member_id: int) -> dict[str, Any] | None:
    """The member's top channel with its score and the reason, or None before scoring."""
    return session.scalar(sa.text("SELECT " + TOP_CHANNEL_SQL.format(member_id=":m")),
                          {"m": member_id, **piece_params()})
