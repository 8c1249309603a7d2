"""The TTS service: which users hold a role. Called through the `tts_api` connection."""

from __future__ import annotations

import requests
import tenacity


class TtsError(RuntimeError):
    """TTS could not say who holds a role: unreachable, failing, or answering something that is not a user list."""


def _transient(exc: BaseException) -> bool:
    """Worth retrying: no connection, a timeout, or a 5xx (the hook wraps HTTP errors, the cause says which)."""
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return True
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, requests.HTTPError) and cause.response is not None and cause.response.status_code >= 500


class TtsClient:
    """`GET /api/v1/tts/round-robin/?role_name=...` with timeouts and retries with exponential backoff."""

    def __init__(self, conn_id: str = "tts_api", attempts: int = 3, timeout: tuple[float, float] = (3, 10)):
        self.conn_id, self.attempts, self.timeout = conn_id, attempts, timeout

    def users_for_role(self, role_name: str) -> list[int]:
        from airflow.providers.http.hooks.http import HttpHook
        from airflow.sdk.exceptions import AirflowException

        hook = HttpHook(method="GET", http_conn_id=self.conn_id)
        retry = {
            "stop": tenacity.stop_after_attempt(self.attempts),
            "wait": tenacity.wait_exponential(multiplier=0.5, max=8),
            "retry": tenacity.retry_if_exception(_transient),
            "reraise": True,
        }
        try:
            answer = hook.run_with_advanced_retry(
                _retry_args=retry, endpoint="api/v1/tts/round-robin/", data={"role_name": role_name},
                extra_options={"timeout": self.timeout, "check_response": True})
            users = answer.json()
        except (requests.RequestException, AirflowException, ValueError) as exc:
            raise TtsError(f"TTS unreachable or failing for role {role_name!r}: {exc}") from exc
        if not isinstance(users, list) or not all(isinstance(u, int) and not isinstance(u, bool) for u in users):
            raise TtsError(f"TTS answered something that is not a list of user ids for role {role_name!r}: "
                           f"{str(users)[:200]}")
        return users
