"""A method a path does not have is 405 with the methods the OpenAPI document lists for that path, whichever
router serves them and whatever templated sibling the path also matches."""

import pytest


@pytest.mark.parametrize("method,path,allowed", [
    # GET (search) and POST (enrol) come from two routers; Starlette's own Allow named one of them.
    ("DELETE", "/v1/members", "GET, POST"),
    # A literal path also matched by a templated sibling: PATCH reached PATCH /v1/organisations/{organisation_id}
    # and answered 422 for "allocate" not being an id.
    ("PATCH", "/v1/organisations/allocate", "POST"),
    ("DELETE", "/v1/members/lookup", "GET"),
])
def test_a_method_the_path_does_not_have_is_405_with_the_documented_methods(app_client, admin_headers, method, path,
                                                                            allowed):
    documented = app_client.get("/openapi.json").json()["paths"][path]
    assert ", ".join(sorted(m.upper() for m in documented)) == allowed
    answer = app_client.request(method, path, headers=admin_headers)
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == allowed
    assert answer.json()["error"]["code"] == "method_not_allowed"


def test_a_templated_path_with_a_bad_id_is_still_a_validation_error(app_client, admin_headers):
    answer = app_client.get("/v1/organisations/not-a-number", headers=admin_headers)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "validation_error"
