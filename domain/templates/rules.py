"""Pure rules of message templates: placeholders against declared variables."""

from __future__ import annotations

import string
from collections.abc import Collection, Mapping
from typing import Any

ANY_CHANNEL = "any"
PURPOSES = ("service", "care", "marketing")


def placeholders(body: str) -> set[str] | None:
    """The ``{name}`` placeholders of a body, or None when the braces do not parse (``{name`` …)."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(body) if name is not None}
    except ValueError:
        return None


def body_problem(body: str, declared: Collection[str]) -> str | None:
    """Why a body cannot go out with these declared variables, or None. Names the first offender."""
    used = placeholders(body)
    if used is None:
        return "unbalanced braces in the body (write {{ and }} for literal braces)"
    if "" in used:
        return "an empty placeholder {} in the body"
    unknown = sorted(used - set(declared))
    if unknown:
        return f"unknown placeholder {{{unknown[0]}}}: declared variables are {sorted(declared)}"
    return None


def variables_problem(given: Mapping[str, Any], declared: Collection[str]) -> str | None:
    """Why a request's variables do not fit the template, or None: every declared one, nothing else."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        return f"unknown variable {unknown[0]!r}: the template declares {sorted(declared)}"
    missing = sorted(set(declared) - set(given))
    if missing:
        return f"missing variable {missing[0]!r}: the template declares {sorted(declared)}"
    return None


def render(body: str, variables: Mapping[str, Any]) -> str:
    """The body with its variables filled (only for bodies that passed ``body_problem``)."""
    return body.format_map(dict(variables))
