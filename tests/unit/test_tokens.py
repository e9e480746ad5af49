"""Session tokens: what a verified token stays subject to once its signature check is remembered."""

from datetime import UTC, datetime, timedelta

import pytest

from domain.access.tokens import issue_token, token_audience, verify_token
from domain.errors import Unauthorized

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def _token(**overrides: object) -> str:
    fields: dict = {"audience": "staff", "subject": "staff:1", "session_id": "s1", "issued_at": NOW,
                    "expires_at": NOW + timedelta(minutes=30), **overrides}
    return issue_token(**fields)


def test_a_token_verified_once_still_expires_and_keeps_its_audience():
    token = _token()
    assert verify_token(token, audience="staff", now=NOW)["sid"] == "s1"
    assert verify_token(token, audience="staff", now=NOW + timedelta(minutes=29))["sid"] == "s1"  # remembered
    with pytest.raises(Unauthorized) as expired:
        verify_token(token, audience="staff", now=NOW + timedelta(minutes=30))
    assert expired.value.code == "token_expired"
    with pytest.raises(Unauthorized) as other:
        verify_token(token, audience="member", now=NOW)
    assert other.value.code == "invalid_token"
    assert token_audience(token) == "staff" and token_audience("not-a-token") is None


def test_the_claims_answered_are_the_callers_own_copy():
    token = _token(session_id="s2")
    verify_token(token, audience="staff", now=NOW)["sid"] = "someone else's"
    assert verify_token(token, audience="staff", now=NOW)["sid"] == "s2"


def test_a_tampered_token_is_refused_every_time():
    token = _token(session_id="s3")
    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{signature[:-2]}AA"
    for _ in range(2):
        with pytest.raises(Unauthorized) as refused:
            verify_token(forged, audience="staff", now=NOW)
        assert refused.value.code == "invalid_token"
