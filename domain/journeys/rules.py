"""Pure rules of journeys and campaigns: control groups, uplift, care dates, templates."""

from __future__ import annotations

import hashlib
import math
import string
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from domain.lifecycle.rules import STAGES as LIFECYCLE_STAGES

# --- control groups ------------------------------------------------------------------------------


def in_control_group(*, member_id: int, experiment: str, control_share: float) -> bool:
    """Deterministic assignment: the same member always lands in the same group of the same experiment,
    whichever process asks, and assignments of different experiments are independent."""
    if control_share <= 0:
        return False
    if control_share >= 1:
        return True
    return control_bucket(member_id=member_id, experiment=experiment) < control_share


def control_bucket(*, member_id: int, experiment: str) -> float:
    """The member's place in [0, 1) for an experiment: the first 32 bits of SHA-256("experiment:member").
    ``CONTROL_BUCKET_SQL`` computes the same number in PostgreSQL for set-based enrollment."""
    digest = hashlib.sha256(f"{experiment}:{member_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


CONTROL_BUCKET_SQL = ("(('x' || substr(encode(sha256(convert_to({experiment} || ':' || {member_id}, 'UTF8')), "
                      "'hex'), 1, 8))::bit(32)::bigint / 4294967296.0)")


# --- uplift ----------------------------------------------------------------------------------------

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Uplift:
    treatment_rate: float | None
    control_rate: float | None
    uplift: float | None
    """Treatment rate minus control rate (absolute percentage points as a fraction)."""
    ci_low: float | None
    ci_high: float | None
    """95% confidence interval of the difference (Newcombe's hybrid Wilson score method)."""


def _wilson(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def conversion_uplift(*, treatment_converted: int, treatment_size: int, control_converted: int,
                      control_size: int) -> Uplift:
    """Uplift of the treatment over the control with a 95% interval.

    Newcombe's method stays inside [-1, 1] and behaves at small counts and 0% / 100% rates, where the
    plain Wald interval collapses to zero width; direct-marketing control groups are often small.
    """
    if treatment_size <= 0 or control_size <= 0:
        rate_t = treatment_converted / treatment_size if treatment_size > 0 else None
        rate_c = control_converted / control_size if control_size > 0 else None
        return Uplift(rate_t, rate_c, None, None, None)
    p1, p2 = treatment_converted / treatment_size, control_converted / control_size
    l1, u1 = _wilson(treatment_converted, treatment_size)
    l2, u2 = _wilson(control_converted, control_size)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Uplift(p1, p2, diff, max(-1.0, low), min(1.0, high))


# --- care dates ------------------------------------------------------------------------------------


def birthday_in_year(birthday: date, year: int) -> date:
    """The day a birthday is celebrated in ``year``: 29 February falls on 28 February in other years."""
    try:
        return birthday.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def local_send_time(day: date, at: time, timezone: str) -> datetime:
    """``at`` o'clock on ``day`` in the member's timezone, as an aware datetime (DST-safe: a wall time that
    does not exist that day moves forward by the gap)."""
    tz = ZoneInfo(timezone)
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=tz)
    # Round-trip through UTC: a non-existent local time (spring-forward gap) normalises forward.
    return aware.astimezone(ZoneInfo("UTC")).astimezone(tz)


def next_birthday_greeting(*, birthday: date, timezone: str, after: datetime, at: time = time(10, 0)) -> datetime:
    """The next greeting instant strictly after ``after``: ``at`` local time on the (adjusted) birthday."""
    local_after = after.astimezone(ZoneInfo(timezone))
    for year in (local_after.year, local_after.year + 1, local_after.year + 2):
        candidate = local_send_time(birthday_in_year(birthday, year), at, timezone)
        if candidate > after:
            return candidate
    raise AssertionError("unreachable: a birthday comes every year")


def add_days(start: datetime, days: int) -> datetime:
    return start + timedelta(days=days)


# --- templates -------------------------------------------------------------------------------------


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def template_variables(text: str) -> set[str]:
    """The ``{name}`` variables a template uses."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def render_template(text: str, variables: dict[str, Any]) -> str:
    """Fill ``{name}`` variables; an unknown variable stays visible rather than raising mid-journey."""
    return string.Formatter().vformat(text, (), _Missing(variables))


def render_template_sql(text: str, variables: Mapping[str, str], *, prefix: str = "tpl"
                        ) -> tuple[str, dict[str, str]] | None:
    """``render_template`` as a SQL text expression: ``variables`` maps each variable to the caller's SQL for its
    text (never NULL); the literal pieces travel as parameters named ``<prefix>_<n>``. The text is split by the
    same parser as ``render_template``, so the two agree on escaped braces and on unknown variables (left
    visible). None when the text has no SQL form (a format spec or conversion such as ``{name!r}``, or a field
    that is not a plain name): render those in Python."""
    pieces: list[str] = []
    params: dict[str, str] = {}

    def literal(value: str) -> None:
        if value:
            params[f"{prefix}_{len(params)}"] = value
            pieces.append(f"CAST(:{prefix}_{len(params) - 1} AS text)")

    for text_before, field, spec, conversion in string.Formatter().parse(text):
        literal(text_before)
        if field is None:
            continue
        if spec or conversion or not field.isidentifier():
            return None
        if field in variables:
            pieces.append(f"({variables[field]})")
        else:
            literal("{" + field + "}")
    return ("(" + " || ".join(pieces) + ")" if pieces else "''"), params


# --- journey validation ------------------------------------------------------------------------------
# A journey is checked whole when it is created or edited, so that nothing is found wrong at run time
# (the first release accepted channel "fax", and then every run of every journey failed).

STEP_FIELDS: Mapping[str, frozenset[str]] = {
    "send": frozenset({"day", "kind", "message", "channel", "purpose"}),
    "branch": frozenset({"day", "kind", "if", "goto"}),
    "lapse": frozenset({"day", "kind"}),
}
STEP_CHANNELS = ("preferred", "phone", "sms", "wechat", "email", "app")
STEP_PURPOSES = ("service", "care", "marketing")
TIERS = ("D", "C", "B", "A")
MESSAGE_VARIABLES = frozenset({"name", "tier", "points", "expiring_points", "member_code", "holiday"})
"""What a journey message may say: the variables a run fills for every member."""
OCCASION = "{occasion}"
"""A care journey's message that is the occasion's own template (birthday, holiday)."""
OCCASION_TEMPLATES = ("birthday", "holiday", "account")
"""The occasions a care run greets (an organisation's important date is ``account``)."""


@dataclass(frozen=True)
class StepProblem:
    step: int
    field: str
    message: str


def branch_condition_problem(condition: object) -> str | None:
    """Why a branch condition is not one a run can evaluate, or None: ``purchased``, ``tier_in:A,B``,
    ``preferred_channel:sms``, ``consent_granted:wechat``, ``lifecycle:decline`` (one or several stages),
    ``at_risk`` (on the churn warning's at-risk list)."""
    if not isinstance(condition, str):
        return "a branch needs an 'if' condition"
    name, _, arg = condition.partition(":")
    channels = STEP_CHANNELS[1:]
    if name == "purchased" and not arg:
        return None
    if name == "tier_in" and arg and all(t in TIERS for t in arg.split(",")):
        return None
    if name in ("preferred_channel", "consent_granted") and arg in channels:
        return None
    if name == "lifecycle" and arg and all(stage in LIFECYCLE_STAGES for stage in arg.split(",")):
        return None
    if name == "at_risk" and not arg:
        return None
    return (f"unknown condition {condition!r}: purchased, tier_in:<{','.join(TIERS)}>, "
            f"preferred_channel:<channel>, consent_granted:<channel> (channels {', '.join(channels)}), "
            f"lifecycle:<{','.join(LIFECYCLE_STAGES)}>, at_risk")


def journey_problems(*, trigger: str, steps: Sequence[object],
                     templates: Mapping[str, tuple[str, Collection[str]]]) -> list[StepProblem]:
    """Everything wrong with a journey's steps, each naming its step (0-based) and field. ``templates``: the
    catalogue's current templates, key → (purpose, declared variables)."""
    problems: list[StepProblem] = []
    if not steps:
        return [StepProblem(0, "steps", "a journey needs at least one step")]
    days: list[int] = []
    for index, raw in enumerate(steps):
        if not isinstance(raw, dict):
            problems.append(StepProblem(index, "step", "a step is an object"))
            continue
        step: dict[str, object] = raw
        kind = step.get("kind")
        if kind not in STEP_FIELDS:
            problems.append(StepProblem(index, "kind", f"kind is one of {', '.join(STEP_FIELDS)}"))
            continue
        extra = sorted(set(step) - STEP_FIELDS[str(kind)])
        if extra:
            problems.append(StepProblem(index, extra[0], f"a {kind} step has no field {extra[0]!r}"))
        day = step.get("day")
        if not isinstance(day, int) or isinstance(day, bool) or day < 0:
            problems.append(StepProblem(index, "day", "day is a whole number of days >= 0"))
        else:
            if days and day < days[-1]:
                problems.append(StepProblem(index, "day", f"day {day} comes before the previous step's {days[-1]}: "
                                                          "steps are in day order"))
            days.append(day)
        if kind == "send":
            if step.get("channel") not in STEP_CHANNELS:
                problems.append(StepProblem(index, "channel", f"unknown channel {step.get('channel')!r}: one of "
                                                              f"{', '.join(STEP_CHANNELS)}"))
            if step.get("purpose") not in STEP_PURPOSES:
                problems.append(StepProblem(index, "purpose", f"unknown purpose {step.get('purpose')!r}: one of "
                                                              f"{', '.join(STEP_PURPOSES)}"))
            message = step.get("message")
            names: tuple[object, ...] = OCCASION_TEMPLATES if message == OCCASION else (message,)
            if message == OCCASION and trigger != "care.date":
                problems.append(StepProblem(index, "message", f"{OCCASION} is only for care.date journeys"))
                names = ()
            for name in names:
                if not isinstance(name, str) or name not in templates:
                    problems.append(StepProblem(index, "message", f"unknown template {name!r}"))
                    continue
                purpose, declared = templates[name]
                unknown = sorted(set(declared) - MESSAGE_VARIABLES)
                if unknown:
                    problems.append(StepProblem(index, "message", f"template {name!r} uses variable {{{unknown[0]}}}"
                                                                  f", which a journey cannot fill"))
                if step.get("purpose") in STEP_PURPOSES and step.get("purpose") != purpose:
                    problems.append(StepProblem(index, "purpose", f"template {name!r} is {purpose}, not "
                                                                  f"{step.get('purpose')}"))
        elif kind == "branch":
            problem = branch_condition_problem(step.get("if"))
            if problem:
                problems.append(StepProblem(index, "if", problem))
            goto = step.get("goto")
            if not (goto == "exit" or (isinstance(goto, int) and not isinstance(goto, bool)
                                       and index < goto < len(steps))):
                problems.append(StepProblem(index, "goto", "goto is 'exit' or the index of a later step"))
        elif index != len(steps) - 1:
            problems.append(StepProblem(index, "kind", "lapse ends the journey: it is the last step"))
    return problems
