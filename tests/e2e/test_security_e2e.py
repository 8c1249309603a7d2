"""Security checks on the real Airflow: no data without a token, no change without the right, no secret leaked."""

import base64
import json
import re
import warnings
from urllib.parse import quote, urlsplit

import psycopg
import pytest
import requests

from devstack.stack import TDX_WEB_SERVICES_KEY, VIEWER_PASSWORD, VIEWER_USER
from devstack.standins import SMTP_PASSWORD
from tests.support import eventually

pytestmark = pytest.mark.e2e
#: What Airflow answers without a token by design: liveness, version, and the login/logout redirects.
PUBLIC = {"/api/v2/monitor/health", "/api/v2/version", "/api/v2/auth/login", "/api/v2/auth/logout"}
#: The UI's own API (not in /openapi.json): a sample of its data routes.
PRIVATE_UI = ["/ui/dags", "/ui/config", "/ui/dashboard/dag_stats", "/ui/auth/menus", "/ui/dependencies",
              "/ui/backfills", "/ui/connections/hook_meta"]


def test_no_rest_plugin_or_ui_endpoint_answers_data_without_a_token(stack):
    document = requests.get(f"{stack.api_url}/openapi.json", timeout=30).json()
    paths = [re.sub(r"\{[^}]+\}", "1", path) for path, operations in document["paths"].items()
             if "get" in operations and path not in PUBLIC]
    assert len(paths) > 60 and any(p.startswith("/ticketflow/") for p in paths)
    answered = {}
    for path in paths + PRIVATE_UI:
        answer = requests.get(stack.api_url + path, timeout=30, allow_redirects=False)
        if answer.status_code not in (401, 403):
            answered[path] = answer.status_code
    assert answered == {}
    refused = requests.post(f"{stack.api_url}/api/v2/dags/event_lifecycle/dagRuns", json={"logical_date": None},
                            timeout=30)
    assert refused.status_code == 401
    for page in ("/", "/plugin/ticketflow-health"):  # the UI's HTML shell: no data until it logs in
        shell = requests.get(stack.api_url + page, timeout=30)
        assert "event_lifecycle" not in shell.text and "automation_runs" not in shell.text


def _token_kinds(stack) -> dict[str, str | None]:
    """No token, and four that must not pass: garbage, a real token's claims signed with another key, the same
    unsigned (alg none), and one signed with the server's own key that expired an hour ago."""
    import jwt
    from jwt.warnings import InsecureKeyLengthWarning

    real = stack.token()
    header, claims = jwt.get_unverified_header(real), jwt.decode(real, options={"verify_signature": False})
    secret = json.loads((stack.airflow_home / "secrets.json").read_text())["jwt_secret"]
    expired = {**claims, "iat": claims["iat"] - 7200, "nbf": claims["nbf"] - 7200, "exp": claims["iat"] - 3600}
    unsigned = ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
                        for part in ({"alg": "none", "typ": "JWT"}, claims)) + "."
    with warnings.catch_warnings():  # make run's JWT secret is 43 bytes, shorter than RFC 7518 asks for HS512
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        expired_token = jwt.encode(expired, secret, algorithm=header["alg"], headers=header)
    return {"none": None, "garbage": "not-a-jwt", "alg none": unsigned, "expired": expired_token,
            "forged": jwt.encode(claims, "not-the-servers-secret-but-long-enough-for-hs512" * 2,
                                 algorithm=header["alg"], headers=header)}


def test_no_operation_answers_2xx_to_a_missing_forged_unsigned_or_expired_token(stack):
    """Every operation of /openapi.json (Airflow's and Ticketflow's, reads and changes), the token in the header,
    and for Ticketflow's in the UI's cookie too (from the server's own origin, so only authentication decides)."""
    document = requests.get(f"{stack.api_url}/openapi.json", timeout=30).json()
    operations = [(method, re.sub(r"\{[^}]+\}", "1", path)) for path, methods in document["paths"].items()
                  if path not in PUBLIC and path != "/auth/token" for method in methods]
    assert len(operations) > 100
    answered = {}
    with requests.Session() as session:
        for kind, token in _token_kinds(stack).items():
            carriers = [{"Authorization": f"Bearer {token}"} if token else {}]
            if token:
                carriers.append({"Cookie": f"_token={token}", "Origin": stack.api_url})
            for headers in carriers:
                for method, path in operations:
                    if "Cookie" in headers and not path.startswith("/ticketflow/"):
                        continue
                    answer = session.request(method, stack.api_url + path, headers=headers, timeout=30,
                                             allow_redirects=False, **({} if method == "get" else {"json": {}}))
                    if answer.status_code < 400:
                        answered[(kind, method, path, "Cookie" in headers)] = answer.status_code
    assert answered == {}


def test_a_read_only_user_can_neither_trigger_nor_pause_nor_clear(stack, api):
    viewer = requests.Session()
    viewer.headers["Authorization"] = f"Bearer {stack.token(VIEWER_USER, VIEWER_PASSWORD)}"
    def manual_runs() -> int:
        return api.get("dags/event_lifecycle/dagRuns", run_type="manual", limit=1)["total_entries"]

    before = manual_runs()
    assert viewer.get(api.url("dags/event_lifecycle"), timeout=30).status_code == 200  # may look
    attempts = [
        viewer.post(api.url("dags/event_lifecycle/dagRuns"), json={"logical_date": None}, timeout=30),
        viewer.patch(api.url("dags/event_lifecycle"), json={"is_paused": True}, timeout=30),
        viewer.post(api.url("dags/event_lifecycle/clearTaskInstances"), json={"dry_run": False}, timeout=30),
        viewer.post(f"{stack.api_url}/ticketflow/tdx/actions/clear_failed", json={"all": True}, timeout=30),
    ]
    assert [answer.status_code for answer in attempts] == [403, 403, 403, 403]
    assert manual_runs() == before
    assert api.get("dags/event_lifecycle")["is_paused"] is False


def test_no_secret_in_task_logs_process_logs_xcom_or_rendered_fields(stack, api):
    """A real TDX run (login with the WebServicesKey, bearer token) and an intake run, then everything is read."""
    keys = json.loads((stack.airflow_home / "secrets.json").read_text())
    secrets = {"TDX WebServicesKey": TDX_WEB_SERVICES_KEY, "SMTP password": SMTP_PASSWORD,
               "Fernet key": keys["fernet_key"], "JWT secret": keys["jwt_secret"],
               "the admin's password file": '"admin": "admin"'}
    if urlsplit(stack.app_db_url).password:
        secrets["database password"] = urlsplit(stack.app_db_url).password
    runs = [("tdx_ticket_queue", api.trigger("tdx_ticket_queue", conf={"report_id": 1001, "dry_run": False})),
            ("ticket_intake", api.trigger("ticket_intake", conf={"subject": "Password reset", "department": "IT",
                                                                 "category": "Accounts"}))]
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:  # an email, sent with the SMTP login
        conn.execute("INSERT INTO email_outbox (dedup_key, template, recipient, context) VALUES"
                     " ('security-check', 'event_reminder', 'sec@example.com', %s)",
                     (json.dumps({"event_id": 1, "title": "Fire drill", "start_time": "2026-12-01T10:00:00+00:00",
                                  "customer_name": "Sec"}),))
        eventually(lambda: conn.execute("SELECT status = 'sent' FROM email_outbox WHERE dedup_key = 'security-check'"
                                        ).fetchone()[0], seconds=120, what="the email sent")
    exposed = []
    for dag_id, run in runs:
        assert api.wait_for_run(dag_id, run["dag_run_id"], timeout=240)["state"] == "success"
        run_path = f"dags/{dag_id}/dagRuns/{quote(run['dag_run_id'], safe='')}"
        for instance in api.get(f"{run_path}/taskInstances", limit=100)["task_instances"]:
            detail = api.get(f"{run_path}/taskInstances/{instance['task_id']}/{instance['map_index']}"
                             if instance["map_index"] >= 0 else f"{run_path}/taskInstances/{instance['task_id']}")
            xcom = api.session.get(api.url(f"{run_path}/taskInstances/{instance['task_id']}/xcomEntries"),
                                   params={"map_index": instance["map_index"]}, timeout=30).text
            exposed += [(name, "task instance or rendered fields", instance["task_id"])
                        for name, secret in secrets.items() if secret in json.dumps(detail)]
            exposed += [(name, "XCom", instance["task_id"]) for name, secret in secrets.items() if secret in xcom]
    log_files = [*(stack.airflow_home / "logs").rglob("*.log"), *stack.logs.glob("*.log")]
    assert any("tdx_ticket_queue" in str(path) for path in log_files)
    for path in log_files:
        text = path.read_text(errors="replace")
        exposed += [(name, "log", str(path)) for name, secret in secrets.items() if secret in text]
    assert exposed == []
