"""Bad input that used to reach a 500 gets its 4xx in the one error shape."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from domain.campaigns.rules import FILTER_KEYS
from domain.orders.models import Order
from tests.factories import make_member


def _campaign(audience):
    return {"name": "spring", "channel": "sms", "template": "first_offer", "audience": audience}


def _call_list(audience):
    return {"name": "retention", "product": "broadband", "audience": audience}


WRONG_TYPES = [
    {"tiers": 5}, {"tiers": "A"}, {"tiers": [1, {"a": 1}]}, {"statuses": ["asleep"]}, {"min_age": "abc"},
    {"min_age": 10**12}, {"max_age": -1}, {"last_purchase_before": "garbage"}, {"last_purchase_after": 5},
    {"last_purchase_after": "2026-01-01T00:00:00"},  # an instant without its zone is ambiguous
    {"min_spend_fen": "x"}, {"max_spend_fen": [1]}, {"cities": [None]}, {"source_channels": ["pigeon"]},
]


@pytest.mark.parametrize("audience", WRONG_TYPES, ids=[str(a) for a in WRONG_TYPES])
def test_a_campaign_audience_with_a_wrong_typed_value_is_422(app_client, admin_headers, audience):
    response = app_client.post("/v1/campaigns", json=_campaign(audience), headers=admin_headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_audience"
    assert response.json()["error"]["details"]["errors"]


def test_a_campaign_audience_with_an_unknown_key_is_422(app_client, admin_headers):
    response = app_client.post("/v1/campaigns", json=_campaign({"tiers": ["A"], "favourite_colour": "red"}),
                               headers=admin_headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["details"]) == ("unknown_filters", {"filters": ["favourite_colour"]})


CALL_LIST_WRONG = [{"tiers": 5}, {"min_age": "abc"}, {"max_age": 10**12}, {"statuses": "active"},
                   {"cities": [{"x": 1}]}]


@pytest.mark.parametrize("audience", CALL_LIST_WRONG, ids=[str(a) for a in CALL_LIST_WRONG])
def test_a_call_list_audience_with_a_wrong_typed_value_is_422_when_defined(app_client, admin_headers, audience):
    response = app_client.post("/v1/crm/call-lists", json=_call_list(audience), headers=admin_headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_audience"


def test_a_call_list_audience_with_an_unknown_key_is_422(app_client, admin_headers):
    response = app_client.post("/v1/crm/call-lists", json=_call_list({"nope": 1}), headers=admin_headers)
    assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_filters"


def test_a_well_formed_call_list_audience_is_accepted_and_extracts(app_client, admin_headers):
    created = app_client.post("/v1/crm/call-lists", headers=admin_headers, json=_call_list(
        {"tiers": ["A", "B"], "statuses": ["active"], "cities": ["Shanghai"], "min_age": 20, "max_age": 60}))
    assert created.status_code == 201, created.text
    assert app_client.post(f"/v1/crm/call-lists/{created.json()['id']}/extract", headers=admin_headers
                           ).status_code == 200


FINITE = st.floats(allow_nan=False, allow_infinity=False)  # what JSON can carry
JSON = st.recursive(st.none() | st.booleans() | st.integers() | FINITE | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                 max_size=3), max_leaves=6)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(audience=st.dictionaries(st.sampled_from(sorted(FILTER_KEYS)), JSON, max_size=3))
def test_no_campaign_audience_answers_5xx(app_client, admin_headers, audience):
    response = app_client.post("/v1/campaigns", json=_campaign(audience), headers=admin_headers)
    assert response.status_code in (201, 422), (audience, response.text)
    if response.status_code == 201:
        preview = app_client.get(f"/v1/campaigns/{response.json()['id']}/preview", headers=admin_headers)
        assert preview.status_code < 500, (audience, preview.text)


@pytest.mark.parametrize("occurred_at", ["9999-12-31T23:59:59+00:00", "9999-12-31T23:59:59-12:00",
                                         "9999-12-25T00:00:00+08:00"])
def test_an_order_in_the_year_9999_is_a_4xx_not_a_500(app_client, session, app_headers, occurred_at):
    member = make_member(session)
    response = app_client.post("/v1/orders", headers=app_headers, json={
        "order_id": "O-far-future", "member_id": member.id, "amount_fen": 1_000, "channel": "store",
        "occurred_at": occurred_at})
    assert 400 <= response.status_code < 500, response.text
    assert {"code", "message", "details"} <= set(response.json()["error"])
    assert session.exec(select(Order).where(Order.order_id == "O-far-future")).first() is None
