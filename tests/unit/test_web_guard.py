"""The request guard in front of a real FastAPI app: what reaches a route, what is refused, which headers go out.

The same guard runs on the real API server in tests/e2e/test_security_e2e.py; here every branch, in milliseconds.
"""

import asyncio
import json
from typing import Annotated

import pytest
from fastapi import Body, FastAPI, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from ticketflow.web.guard import (
    MAX_BODY_BYTES,
    SESSION_COOKIE,
    DigitsConvertor,
    RequestGuard,
    guard,
    json_safe,
    origin_of,
)

BASE_URL = "https://tickets.example.org/airflow"
COOKIE = {"Cookie": "_token=a.jwt.from-the-ui"}
SAME_SITE = "https://other.example.org"


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int
    tags: list[str] = []


@pytest.fixture
def client():
    app = FastAPI()
    calls: list[object] = []

    @app.post("/items")
    def add(item: Annotated[Item, Body()]):
        calls.append(item)
        return {"added": item.count}

    @app.post("/items/{item_id}/close")
    def close(item_id: int):
        calls.append(item_id)
        return {"closed": item_id}

    @app.get("/items")
    def items(limit: Annotated[int, Query(ge=1, le=10)] = 5):
        return {"limit": limit}

    guard(app, "HTTPValidationError", base_url=BASE_URL)
    with TestClient(app, base_url="http://testserver") as test_client:
        test_client.calls = calls
        yield test_client


@pytest.mark.parametrize("headers", [
    {"Origin": SAME_SITE, "Content-Type": "text/plain"},               # the probe's page on a sibling origin
    {"Origin": SAME_SITE, "Sec-Fetch-Site": "same-site"},
    {"Origin": "null"},                                                # a sandboxed frame
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Origin": "https://tickets.example.org"},  # the browser's word wins
    {},                                                                # a cookie, but no proof of origin
    {"Authorization": "Bearer ", "Origin": SAME_SITE},                 # an empty bearer: Airflow reads the cookie
    {"Authorization": "Basic YTpi", "Origin": SAME_SITE},
])
def test_a_cookie_authenticated_change_from_elsewhere_is_refused_before_any_route_runs(client, headers):
    for path in ("/items/7/close", "/items"):
        answer = client.post(path, content=b'{"count": 1}', headers={**COOKIE, **headers})
        assert answer.status_code == 403 and "own pages" in answer.json()["detail"], answer.text
    assert client.calls == []


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "same-origin"},
    {"Origin": "https://tickets.example.org"},   # the public origin of [api] base_url
    {"Origin": "http://testserver"},             # the origin the request was addressed to
])
def test_a_cookie_authenticated_change_from_the_servers_own_pages_goes_through(client, headers):
    answer = client.post("/items/7/close", headers={**COOKIE, **headers})
    assert answer.status_code == 200 and client.calls == [7]


def test_a_bearer_token_or_no_credential_at_all_is_left_to_authentication(client):
    bearer = client.post("/items", json={"count": 2}, headers={"Authorization": "Bearer x.y.z", "Origin": SAME_SITE})
    anonymous = client.post("/items", json={"count": 3}, headers={"Origin": SAME_SITE})
    assert (bearer.status_code, anonymous.status_code) == (200, 200)  # the real app answers 401 / 403 itself
    assert [item.count for item in client.calls] == [2, 3]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml", "nonsense"])
def test_a_change_takes_json_only(client, content_type):
    for path in ("/items", "/items/7/close"):
        answer = client.post(path, content=b'{"count": 1}', headers={"Content-Type": content_type})
        assert answer.status_code == 415 and "must be JSON" in answer.json()["detail"]
    assert client.calls == []
    assert client.post("/items", json={"count": 1}, headers={"Content-Type": "application/json; charset=utf-8"}
                       ).status_code == 200
    assert client.post("/items/7/close").status_code == 200  # no body, no type: nothing to refuse


def test_the_cookie_checked_is_airflows():
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    assert SESSION_COOKIE == COOKIE_NAME_JWT_TOKEN


def test_a_body_over_the_limit_is_refused_whether_announced_or_streamed(client):
    document = json.dumps({"count": 1, "tags": ["x" * 1000] * (MAX_BODY_BYTES // 1000)}).encode()
    assert client.post("/items", content=document, headers={"Content-Type": "application/json"}).status_code == 413

    def chunks():
        yield document[:MAX_BODY_BYTES // 2]
        yield document[MAX_BODY_BYTES // 2:]
    assert client.post("/items", content=chunks(), headers={"Content-Type": "application/json"}).status_code == 413
    assert client.calls == []


@pytest.mark.parametrize("number, kind", [("NaN", "finite_number"), ("Infinity", "finite_number"),
                                          ("-Infinity", "finite_number"), ("1e999", "finite_number"),
                                          ("-1e999", "finite_number"), ("9" * 5000, "int_parsing_size")])
def test_numbers_json_cannot_carry_are_a_422_naming_the_field(client, number, kind):
    for body, loc in ((f'{{"count": {number}}}', ["body", "count"]),
                      (f'{{"count": 1, "tags": ["a", {number}]}}', ["body", "tags", 1])):
        answer = client.post("/items", content=body.encode(), headers={"Content-Type": "application/json"})
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["detail"]
        assert (error["type"], error["loc"]) == (kind, loc) and len(error["input"]) <= 60
    assert client.calls == []


def test_an_absurd_content_length_is_a_413_not_an_int_conversion():
    async def route(scope, receive, send):
        raise AssertionError("the route must not run")

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "scheme": "http", "path": "/items",
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"9" * 5000)]}
    asyncio.run(RequestGuard(route)(scope, receive, send))
    assert sent[0]["status"] == 413 and b"at most" in sent[1]["body"]


def test_other_bad_bodies_are_left_to_the_app_which_refuses_them(client):
    for body in (b"{not json", b"[" * 100_000, b"\xff\xfe"):
        answer = client.post("/items", content=body, headers={"Content-Type": "application/json"})
        assert 400 <= answer.status_code < 500, answer.text
    assert client.post("/items", json={"count": 1, "extra": True}).status_code == 422
    assert client.calls == []


def test_a_validation_error_never_echoes_what_json_cannot_carry_or_a_megabyte():
    assert json_safe({"input": float("nan"), "ctx": {"le": float("inf")}}) == {"input": "nan", "ctx": {"le": "inf"}}
    assert json_safe([10**400, 2**63 - 1, True]) == ["an integer of 1329 bits", 2**63 - 1, True]
    assert json_safe("x" * 5000).startswith("x" * 200 + "... (5000 characters)")


def test_a_huge_query_integer_is_a_422_naming_it(client):
    answer = client.get("/items", params={"limit": "9" * 5000})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["query", "limit"]
    assert len(answer.text) < 1000


def test_every_answer_carries_the_security_headers_and_a_fresh_script_nonce(client):
    first, second = client.get("/items"), client.post("/items", content=b"x", headers={"Content-Type": "text/plain"})
    for answer in (first, second):
        policy = answer.headers["content-security-policy"]
        assert "frame-ancestors 'self'" in policy and "default-src 'none'" in policy and "'unsafe-inline'" not in (
            policy.split("script-src")[1].split(";")[0])
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "SAMEORIGIN"
    nonce = lambda answer: answer.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]  # noqa: E731
    assert nonce(first) != nonce(second)


def test_the_openapi_document_lists_the_guards_refusals_on_changes_only(client):
    document = client.get("/openapi.json").json()
    assert {"413", "415"} <= set(document["paths"]["/items"]["post"]["responses"])
    assert {"413", "415"} <= set(document["paths"]["/items/{item_id}/close"]["post"]["responses"])
    assert not {"413", "415"} & set(document["paths"]["/items"]["get"]["responses"])


@pytest.mark.parametrize("url, origin", [
    ("https://tickets.example.org/airflow", "https://tickets.example.org"),
    ("https://Tickets.example.org:443/", "https://tickets.example.org"),
    ("http://localhost:8080", "http://localhost:8080"),
    ("http://[::1]:8080/x", "http://[::1]:8080"),
    ("ftp://x", None), ("", None), ("http://x:99999", None),
])
def test_origins_are_written_as_browsers_write_them(url, origin):
    assert origin_of(url) == origin


def test_the_ticketflow_app_leaves_path_numbers_to_validation():
    """Starlette's `{id:int}` converts with int() while routing: a 5,000-digit id was a 500, not a 422."""
    from starlette.convertors import FloatConvertor, IntegerConvertor

    from ticketflow.web.app import create_app
    from ticketflow.web.database import Database

    app = create_app(Database(lambda: "postgresql://nobody@127.0.0.1:1/none"), users_for_role=lambda role: [])
    convertors = {(route.path, name): type(convertor) for route in app.routes
                  for name, convertor in getattr(route, "param_convertors", {}).items()}
    assert convertors and DigitsConvertor in set(convertors.values())
    assert not {IntegerConvertor, FloatConvertor} & set(convertors.values())
    assert RequestGuard in [layer.cls for layer in app.user_middleware]
    routing = TestClient(app, raise_server_exceptions=False)  # answered by the router, before any authentication
    assert routing.get("/tasks/create_task_for_ticket").status_code == 405  # not read as a task id
    assert routing.post("/tasks/-1/complete_task").status_code == 404
