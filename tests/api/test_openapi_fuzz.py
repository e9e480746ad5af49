"""Property-based run over the whole OpenAPI surface: no 5xx, no response outside the documented schema.

Runs in-process against the ASGI app, on the test's rolled-back transaction, with an admin key so every
operation is reachable.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.edge import RateLimit
from api.main import create_app
from tests.conftest import bind_to_session

APP = create_app()
# Hundreds of requests a second from one address: the rate limit would answer most of them (it has its own tests).
APP.user_middleware = [m for m in APP.user_middleware if m.cls is not RateLimit]
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture
def wired_app(session, admin_headers):
    bind_to_session(APP, session)
    try:
        yield admin_headers
    finally:
        APP.dependency_overrides.clear()


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx_or_outside_its_schema(case, wired_app):
    response = case.call(headers=wired_app)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
    case.validate_response(response, checks=[status_code_conformance, content_type_conformance,
                                             response_schema_conformance])
