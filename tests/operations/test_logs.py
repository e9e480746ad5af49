"""One JSON log format; a request id travels from header to log line to error body; no personal data."""

import json
import logging

from cli.logs import make_formatter


def test_a_request_id_is_returned_and_put_into_the_error_body(app_client, crm_key_headers, json_log):
    # The log-line half, through a real uvicorn: tests/operations/test_metrics.py (several workers).
    response = app_client.get("/v1/members/999999", headers={**crm_key_headers, "X-Request-ID": "till-7-abc"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "till-7-abc"
    assert response.json()["error"]["request_id"] == "till-7-abc"


def test_a_request_without_an_id_gets_one_and_a_hostile_id_is_replaced(app_client):
    plain = app_client.get("/healthz")
    assert len(plain.headers["X-Request-ID"]) == 32
    hostile = app_client.get("/healthz", headers={"X-Request-ID": 'x" injected=1\n'})
    assert hostile.headers["X-Request-ID"] != 'x" injected=1\n' and len(hostile.headers["X-Request-ID"]) == 32


def test_validation_errors_carry_the_request_id_too(app_client, app_headers):
    response = app_client.post("/v1/members", headers={**app_headers, "X-Request-ID": "r-422"}, json={"x": 1})
    assert response.status_code == 422 and response.json()["error"]["request_id"] == "r-422"


def test_a_phone_in_a_query_string_never_reaches_the_log(app_client, app_headers, crm_key_headers, crm_headers,
                                                         json_log):
    app_client.post("/v1/members", headers=app_headers, json={
        "source_channel": "store", "phone": "13800138077", "joined_at": "2025-01-01T00:00:00Z"})
    app_client.get("/v1/members/lookup", params={"phone": "13800138077"}, headers=crm_key_headers)
    app_client.get("/v1/crm/members/lookup", params={"phone": "+8613800138077"}, headers=crm_headers)
    text = "\n".join(json.dumps(line) for line in json_log())
    assert "13800138077" not in text  # the access log's own masking is api.edge's (tests/api/test_edge.py)


def test_personal_data_in_a_message_is_masked_as_a_second_line_of_defence():
    formatter = make_formatter("json")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent to %s at %s, order 42",
                               ("+8613800138000", "li@example.com"), None)
    line = json.loads(formatter.format(record))
    assert "13800138000" not in line["event"] and "li@example.com" not in line["event"]
    assert line["event"].endswith("order 42")


def test_the_console_format_is_for_people():
    record = logging.LogRecord("jobs.x", logging.INFO, __file__, 1, "finished: lots=3", (), None)
    text = make_formatter("console").format(record)
    assert "finished: lots=3" in text and not text.startswith("{")
