"""What the Ticketflow app refuses before any route runs, and the headers every answer carries.

One pure ASGI middleware, so every route gets it, those added later too:

- **No cross-site writes.** A POST, PUT, PATCH or DELETE authenticated by the
  UI's `_token` cookie (no `Authorization: Bearer` header) must come from the
  API server's own origin: the browser says `Sec-Fetch-Site: same-origin`, or
  (where it sends no fetch metadata: plain HTTP off localhost) an `Origin` equal
  to this server's. A page on another port or a sibling subdomain is the same
  *site*, so SameSite=Lax still sends it the cookie: it gets a 403, nothing runs.
- **JSON only, bounded, finite.** A write's body is `application/json` (415:
  no HTML form or `text/plain` body reaches a route), at most `MAX_BODY_BYTES`
  (413), and strict JSON: NaN, Infinity, numbers that overflow a double and
  integers Python will not convert are a 422 naming the field, not a 500.
- **Headers.** Every answer carries `X-Content-Type-Options: nosniff`, a
  Content-Security-Policy (framed by this origin only, no plugin or remote
  content, scripts only from here or inline with the request's nonce,
  `request.state.csp_nonce`), `X-Frame-Options: SAMEORIGIN` for browsers
  without CSP, and `Referrer-Policy: same-origin`.

Bearer-token requests skip the origin check: a browser never adds that header
to a cross-site request on its own.
"""

from __future__ import annotations

import json
import math
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from email.message import Message
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.convertors import Convertor, register_url_convertor

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Far above any body the API takes (its longest text is a few KB), far below what would hurt the server.
MAX_BODY_BYTES = 1024 * 1024
#: Airflow's cookie for the UI's JWT (`airflow.api_fastapi.auth.managers.base_auth_manager.COOKIE_NAME_JWT_TOKEN`).
SESSION_COOKIE = "_token"

CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline';"
                           " img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none';"
                           " frame-ancestors 'self'")


class DigitsConvertor(Convertor[str]):
    """`{task_id:digits}`: the route matches digits only, as `:int` does, so `/tasks/workflow_statistics` is not
    taken for a task id; but the digits stay text for pydantic to parse and bound. Starlette's `:int` calls
    int() while routing, and 5,000 digits made that a 500 instead of a 422 naming the parameter."""

    regex = "[0-9]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return str(value)


register_url_convertor("digits", DigitsConvertor())


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of a URL, as a browser writes it in `Origin` (default ports left out)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default_port = {"http": 80, "https": 443}[parts.scheme]
    try:
        port = parts.port
    except ValueError:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default_port else "")


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers, lower-cased names; of a repeated header, the first."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def _has_bearer_token(headers: dict[str, str]) -> bool:
    """As Airflow reads it: an `Authorization: Bearer <token>` header wins over the cookie."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def _has_session_cookie(headers: dict[str, str]) -> bool:
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(headers.get("cookie", ""))
    except CookieError:
        return SESSION_COOKIE in headers.get("cookie", "")  # unparsable: assume the worst
    return SESSION_COOKIE in cookies


class _Refused(Exception):
    def __init__(self, status: int, detail: str | list[dict[str, Any]]):
        self.status, self.detail = status, detail


class _NotJson:
    """A number Python's json would read as NaN, an infinity, or an integer it cannot convert."""

    def __init__(self, text: str, kind: str):
        self.text, self.kind = text, kind


def _parse_int(text: str) -> int | _NotJson:
    if len(text.lstrip("-")) > sys.get_int_max_str_digits():
        return _NotJson(text, "int_parsing_size")
    return int(text)


def _parse_float(text: str) -> float | _NotJson:
    value = float(text)
    return value if math.isfinite(value) else _NotJson(text, "finite_number")


def _not_json_numbers(document: Any) -> Iterator[tuple[list[str | int], _NotJson]]:
    """Where in the document the numbers JSON cannot carry are (iteratively: a document may nest deeply)."""
    stack: list[tuple[list[str | int], Any]] = [([], document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _NotJson):
            yield path, value
        elif isinstance(value, dict):
            stack.extend(([*path, key], item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend(([*path, index], item) for index, item in reversed(list(enumerate(value))))


def strict_json_errors(body: bytes) -> list[dict[str, Any]]:
    """Validation errors, in pydantic's shape, for the numbers in `body` that are not JSON numbers.

    Anything else wrong with the body (bad syntax, bad encoding) is left to the app, which refuses it itself.
    """
    try:
        document = json.loads(body, parse_int=_parse_int, parse_float=_parse_float,
                              parse_constant=lambda name: _NotJson(name, "finite_number"))
    except (ValueError, RecursionError):
        return []
    errors = []
    for path, number in _not_json_numbers(document):
        shown = number.text if len(number.text) <= 40 else f"{number.text[:20]}... ({len(number.text)} characters)"
        message = ("Input should be a finite number" if number.kind == "finite_number" else
                   f"Unable to parse input as an integer: more than {sys.get_int_max_str_digits()} digits")
        errors.append({"type": number.kind, "loc": ["body", *path], "msg": message, "input": shown})
    return errors


def _is_json(content_type: str) -> bool:
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


class RequestGuard:
    """The checks above, in front of the Ticketflow app; `own_origins` are the API server's public origins
    (its `[api] base_url`), besides the origin each request was addressed to."""

    def __init__(self, app: ASGIApp, own_origins: frozenset[str] = frozenset()):
        self.app, self.own_origins = app, own_origins

    def _same_origin(self, scope: Scope, headers: dict[str, str]) -> bool:
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None:  # set by the browser itself; a page cannot forge it
            return fetch_site == "same-origin"
        origin = headers.get("origin")
        addressed = origin_of(f"{scope.get('scheme', 'http')}://{headers.get('host', '')}")
        return origin is not None and origin in {*self.own_origins, addressed}

    def _check_write(self, scope: Scope, headers: dict[str, str]) -> None:
        if not _has_bearer_token(headers) and _has_session_cookie(headers) and not self._same_origin(scope, headers):
            raise _Refused(403, "a change authenticated by the UI's cookie must come from this server's own pages,"
                                " and neither Sec-Fetch-Site nor Origin shows it did; scripts send an"
                                " Authorization: Bearer token")
        content_type = headers.get("content-type")
        if content_type is not None and not _is_json(content_type):
            raise _Refused(415, f"the body must be JSON (Content-Type: application/json), not {content_type[:100]}")
        length = headers.get("content-length", "0")
        if not length.isdigit() or len(length) > 12 or int(length) > MAX_BODY_BYTES:
            raise _Refused(413, f"the body must be at most {MAX_BODY_BYTES} bytes")

    async def _read_body(self, receive: Receive) -> tuple[bytes, list[MutableMapping[str, Any]]]:
        chunks: list[bytes] = []
        messages: list[MutableMapping[str, Any]] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return b"".join(chunks), messages
            size += len(message.get("body", b""))
            if size > MAX_BODY_BYTES:
                raise _Refused(413, f"the body must be at most {MAX_BODY_BYTES} bytes")
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks), messages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        send = _with_security_headers(send, nonce)
        if scope["method"] in WRITE_METHODS:
            headers = _headers(scope)
            try:
                self._check_write(scope, headers)
                body, messages = await self._read_body(receive)
                if errors := strict_json_errors(body):
                    raise _Refused(422, errors)
            except _Refused as refused:
                await _answer(send, refused.status, {"detail": refused.detail})
                return
            receive = _replay(messages, receive)
        await self.app(scope, receive, send)


def _replay(messages: list[MutableMapping[str, Any]], receive: Receive) -> Receive:
    """The body already read, then whatever the client sends next (a disconnect)."""
    pending = list(messages)

    async def replayed() -> MutableMapping[str, Any]:
        return pending.pop(0) if pending else await receive()
    return replayed


def _with_security_headers(send: Send, nonce: str) -> Send:
    added = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"SAMEORIGIN"),
             (b"referrer-policy", b"same-origin"),
             (b"content-security-policy", CONTENT_SECURITY_POLICY.format(nonce=nonce).encode())]

    async def sending(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            message["headers"] = [*message.get("headers", []), *(h for h in added if h[0] not in present)]
        await send(message)
    return sending


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    content = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]})
    await send({"type": "http.response.body", "body": content})


def json_safe(value: Any, text_limit: int = 200) -> Any:
    """A validation error's details as JSON can carry them: non-finite numbers and huge integers as text,
    long text cut (an error need not echo a megabyte back)."""
    if isinstance(value, dict):
        return {key: json_safe(item, text_limit) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item, text_limit) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return f"an integer of {value.bit_length()} bits"  # str() refuses the largest
    if isinstance(value, str) and len(value) > text_limit:
        return f"{value[:text_limit]}... ({len(value)} characters)"
    return value


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, but always serialisable (its own answer fails on a NaN it echoes back: a 500)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": json_safe(jsonable_encoder(errors))}, status_code=422)


def _document_refusals(app: FastAPI, error_schema: str) -> None:
    """Every write operation in the app's OpenAPI document lists the guard's 413 and 415 as well."""
    generate = app.openapi
    refusals = {"413": "The body is larger than 1 MiB", "415": "The body is not JSON"}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            for operations in document.get("paths", {}).values():
                for method, operation in operations.items():
                    if method.upper() in WRITE_METHODS:
                        responses = operation.setdefault("responses", {})
                        for code, description in refusals.items():
                            responses.setdefault(code, {"description": description, "content": {"application/json": {
                                "schema": {"$ref": f"#/components/schemas/{error_schema}"}}}})
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def guard(app: FastAPI, error_schema: str, base_url: str | None = None) -> None:
    """Puts the guard in front of `app`, whose API server is public at `base_url` (default: Airflow's
    `[api] base_url`); validation errors are answered as JSON can carry them; the document says so."""
    if base_url is None:
        from airflow.configuration import conf

        base_url = conf.get("api", "base_url", fallback="") or ""
    own = origin_of(base_url) if base_url else None
    app.add_middleware(RequestGuard, own_origins=frozenset({own} if own else set()))
    app.add_exception_handler(RequestValidationError, _validation_error)
    _document_refusals(app, error_schema)
