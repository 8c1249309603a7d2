"""The TeamDynamix Web API, spoken carefully: one login reused, rate limits honoured, retries that cannot
double a write.

- Login: `POST auth/loginadmin` with the BEID and WebServicesKey of the
  `tdx_api` connection. The token is reused until shortly before its JWT `exp`
  (across task processes through a `TokenStore`), and a 401 logs in again once.
- Rate limits: TDX counts calls per API method. A 429 waits until
  `X-RateLimit-Reset` plus `reset_margin` (5 s). Before that, once
  `X-RateLimit-Remaining` falls under half the limit, the client spreads the
  remaining calls over the rest of the window, and it leaves `reserve` calls
  (one per other worker that may be calling at the same time) untouched.
- Failures: a timeout, a dropped connection or a 5xx is retried with
  exponential backoff when the call is safe to repeat. A write whose outcome is
  unknown raises `TdxOutcomeUnknown` instead: the caller looks before it writes
  again. Any other 4xx raises `TdxRequestError` with TDX's answer.
- Secrets: the token and the key are never logged or put in an exception;
  `on_secret` (Airflow's `mask_secret`) hides the token from task logs.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

log = logging.getLogger(__name__)


class TdxError(RuntimeError):
    """TeamDynamix could not do what was asked."""


class TdxRequestError(TdxError):
    """TDX refused the request itself (a 4xx other than 401 and 429): repeating it will not help."""

    def __init__(self, method: str, status: int, text: str):
        super().__init__(f"{method} answered {status}: {text}")
        self.method, self.status, self.text = method, status, text


class TdxUnavailable(TdxError):
    """TDX stayed unreachable, failing or throttling through every retry."""


class TdxOutcomeUnknown(TdxUnavailable):
    """A write may or may not have taken effect: TDX failed it with a 5xx (`answered`), or never answered."""

    def __init__(self, message: str, answered: bool):
        super().__init__(message)
        self.answered = answered


@dataclass(frozen=True)
class TdxSettings:
    """Where TDX is and how to log in (the `tdx_api` connection)."""

    base_url: str
    beid: str
    web_services_key: str = field(repr=False)
    app_id: int = 46
    asset_app_id: int = 45

    @classmethod
    def from_connection(cls, conn_id: str = "tdx_api") -> TdxSettings:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        extra = conn.extra_dejson
        if not conn.host:
            raise TdxError(f"connection {conn_id!r} needs the TDX base URL (ending in /TDWebApi/api) as its host")
        base_url = conn.host if "://" in conn.host else f"{conn.schema or 'https'}://{conn.host}"
        if conn.port and f":{conn.port}" not in base_url:
            scheme, rest = base_url.split("://", 1)
            host, _, path = rest.partition("/")
            base_url = f"{scheme}://{host}:{conn.port}/{path}"
        if not conn.login or not conn.password:
            raise TdxError(f"connection {conn_id!r} needs the BEID as login and the WebServicesKey as password")
        return cls(base_url.rstrip("/"), conn.login, conn.password,
                   int(extra.get("app_id", 46)), int(extra.get("asset_app_id", 45)))


class TokenStore(Protocol):
    """Keeps a bearer token between processes, so every task does not log in again."""

    def load(self) -> tuple[str, float] | None: ...

    def save(self, token: str, expires_at: float) -> None: ...


def token_expiry(token: str, default_lifetime: float = 23 * 3600) -> float:
    """The `exp` of a JWT, or a conservative guess when the token does not carry one."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError):
        return time.time() + default_lifetime


def api_method(http_method: str, path: str) -> str:
    """The rate-limit bucket of a call: `GET 46/tickets/{id}` for `GET 46/tickets/5001`."""
    return http_method + " " + re.sub(r"(?<=[a-z]/)\d+", "{id}", path.rstrip("/"))


@dataclass
class _Budget:
    limit: int
    remaining: int
    resets_at: float


class TdxClient:
    """One TDX session. Thread-safe for the rate-limit bookkeeping; `calls` counts requests by API method."""

    #: Renew the token this long before it expires.
    TOKEN_MARGIN_SECONDS = 300

    def __init__(self, settings: TdxSettings, *, token_store: TokenStore | None = None,
                 timeout: tuple[float, float] = (5, 30), attempts: int = 4, backoff_seconds: float = 1.0,
                 reset_margin: float = 5.0, pace: bool = True, reserve: int = 4, max_throttled: int = 20,
                 on_secret: Callable[[str], None] | None = None, sleep: Callable[[float], None] = time.sleep):
        self.settings = settings
        self.token_store = token_store
        self.timeout, self.attempts, self.backoff_seconds = timeout, attempts, backoff_seconds
        self.reset_margin, self.max_throttled = reset_margin, max_throttled
        self.pace, self.reserve = pace, reserve
        self.on_secret = on_secret or (lambda secret: None)
        self.sleep = sleep
        self.calls: Counter[str] = Counter()
        self.throttled = 0
        self._session = requests.Session()
        self._token: tuple[str, float] | None = None
        self._budgets: dict[str, _Budget] = {}
        self._lock = threading.Lock()

    # --- the endpoints Ticketflow uses ---

    def report(self, report_id: int) -> dict:
        return self._call("GET", f"reports/{report_id}", params={"withData": "true"})

    def ticket(self, ticket_id: int) -> dict:
        return self._call("GET", f"{self.settings.app_id}/tickets/{ticket_id}")

    def feed(self, ticket_id: int) -> list[dict]:
        return self._call("GET", f"{self.settings.app_id}/tickets/{ticket_id}/feed")

    def post_feed(self, ticket_id: int, entry: dict) -> dict:
        """Not repeatable: a lost answer raises `TdxOutcomeUnknown`, never a second comment."""
        return self._call("POST", f"{self.settings.app_id}/tickets/{ticket_id}/feed", json=entry,
                          repeatable=False)

    def ticket_assets(self, ticket_id: int) -> list[dict]:
        return self._call("GET", f"{self.settings.app_id}/tickets/{ticket_id}/assets")

    def add_asset(self, ticket_id: int, asset_id: int) -> None:
        """Repeatable: an asset already on the ticket stays there once."""
        self._call("POST", f"{self.settings.app_id}/tickets/{ticket_id}/assets/{asset_id}")

    def search_assets(self, **criteria: Any) -> list[dict]:
        """`POST assets/search` with TDX's AssetSearch fields (SearchText, SerialLike, OwningCustomerIDs, ...)."""
        return self._call("POST", f"{self.settings.asset_app_id}/assets/search", json=criteria)

    def update_ticket(self, ticket_id: int, changes: dict[str, Any]) -> dict:
        """`PATCH` with JSON Patch `replace` operations; repeatable, the end state is the same."""
        patch = [{"op": "replace", "path": f"/{name}", "value": value} for name, value in changes.items()]
        return self._call("PATCH", f"{self.settings.app_id}/tickets/{ticket_id}", json=patch)

    # --- token ---

    def _valid_token(self) -> str:
        now = time.time()
        if self._token is None and self.token_store is not None:
            self._token = self.token_store.load()
            if self._token is not None:
                self.on_secret(self._token[0])
        if self._token is None or self._token[1] - self.TOKEN_MARGIN_SECONDS <= now:
            self._token = self._login()
        return self._token[0]

    def _login(self) -> tuple[str, float]:
        body = {"BEID": self.settings.beid, "WebServicesKey": self.settings.web_services_key}
        answer = self._send("POST", "auth/loginadmin", json=body, token=None, repeatable=True)
        if answer.status_code != 200:
            raise TdxError(f"auth/loginadmin answered {answer.status_code}: check the BEID and WebServicesKey "
                           "of the tdx_api connection")
        token = answer.text.strip().strip('"')
        if not token:
            raise TdxError("auth/loginadmin answered an empty token")
        self.on_secret(token)
        expires_at = token_expiry(token)
        if self.token_store is not None:
            self.token_store.save(token, expires_at)
        return token, expires_at

    # --- the request loop ---

    def _call(self, http_method: str, path: str, *, params: dict | None = None, json: Any = None,
              repeatable: bool = True) -> Any:
        logged_in_again = False
        while True:
            token = self._valid_token()
            answer = self._send(http_method, path, params=params, json=json, token=token, repeatable=repeatable)
            if answer.status_code == 401 and not logged_in_again:
                log.info("TDX refused the token for %s; logging in again", api_method(http_method, path))
                self._token, logged_in_again = self._login(), True  # not the store: it holds the refused one
                continue
            if answer.status_code == 401:
                raise TdxError(f"{api_method(http_method, path)} refused a fresh token (401): check the "
                               "BEID and WebServicesKey of the tdx_api connection")
            return answer.json() if answer.content else None

    def _send(self, http_method: str, path: str, *, token: str | None, repeatable: bool,
              params: dict | None = None, json: Any = None) -> requests.Response:
        """One request through rate limits and retries; answers anything but 429, 5xx and other 4xx."""
        method = api_method(http_method, path)
        url = f"{self.settings.base_url}/{path}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        failures = throttled = 0
        while True:
            self._pace(method)
            self.calls[method] += 1
            try:
                answer = self._session.request(http_method, url, params=params, json=json, headers=headers,
                                               timeout=self.timeout)
            except requests.ConnectTimeout as exc:  # never reached TDX: safe to send again
                failures = self._back_off(method, failures, f"connect timeout: {exc.__class__.__name__}")
                continue
            except (requests.ConnectionError, requests.Timeout) as exc:
                if not repeatable:
                    raise TdxOutcomeUnknown(f"{method}: no answer ({exc.__class__.__name__})", False) from None
                failures = self._back_off(method, failures, exc.__class__.__name__)
                continue
            self._remember_budget(method, answer.headers)
            if answer.status_code == 429:
                throttled += 1
                with self._lock:
                    self.throttled += 1
                if throttled > self.max_throttled:
                    raise TdxUnavailable(f"{method}: still throttled after {throttled} waits")
                self.sleep(self._until_reset(answer.headers) + self.reset_margin)
                continue
            if answer.status_code >= 500:
                if not repeatable:
                    raise TdxOutcomeUnknown(f"{method} answered {answer.status_code}: {answer.text[:300]}", True)
                failures = self._back_off(method, failures, f"{answer.status_code}: {answer.text[:300]}")
                continue
            if 400 <= answer.status_code and answer.status_code != 401:
                raise TdxRequestError(method, answer.status_code, answer.text[:2000])
            return answer

    def _back_off(self, method: str, failures: int, reason: str) -> int:
        failures += 1
        if failures >= self.attempts:
            raise TdxUnavailable(f"{method} failed {failures} times; last: {reason}")
        delay = self.backoff_seconds * 2 ** (failures - 1)
        log.warning("TDX %s failed (%s); retry %d in %.1f s", method, reason, failures, delay)
        self.sleep(delay)
        return failures

    # --- rate limits ---

    @staticmethod
    def _until_reset(headers) -> float:
        reset = headers.get("X-RateLimit-Reset")
        try:
            return max(0.0, email.utils.parsedate_to_datetime(reset).timestamp() - time.time())
        except (TypeError, ValueError):
            return 60.0  # no usable reset date: TDX windows are a minute long

    def _remember_budget(self, method: str, headers) -> None:
        try:
            limit, remaining = int(headers["X-RateLimit-Limit"]), int(headers["X-RateLimit-Remaining"])
        except (KeyError, TypeError, ValueError):
            return
        with self._lock:
            self._budgets[method] = _Budget(limit, remaining, time.time() + self._until_reset(headers))

    def _pace(self, method: str) -> None:
        """Before a call: wait out a spent budget, and spread a low one over the rest of its window."""
        with self._lock:
            budget = self._budgets.get(method)
        if budget is None or not self.pace:
            return
        left = budget.resets_at - time.time()
        reserve = min(self.reserve, budget.limit // 10)
        if left <= 0:
            with self._lock:
                self._budgets.pop(method, None)
        elif budget.remaining <= reserve:
            log.info("TDX %s: rate limit reached; waiting %.1f s for the next window", method, left)
            self.sleep(left + 1)
            with self._lock:
                self._budgets.pop(method, None)
        elif budget.remaining < budget.limit / 2:
            self.sleep(left / (budget.remaining - reserve + 1))
