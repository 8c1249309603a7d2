"""The stand-ins speak real HTTP/SMTP, and the connections `make run` defines reach them through the providers'
hooks."""

import os
import subprocess
import sys
from contextlib import closing
from dataclasses import replace

import pytest
import requests

from devstack.stack import TDX_BEID, TDX_WEB_SERVICES_KEY, Ports, connections
from devstack.standins import SmtpStandIn, TdxStandIn, TtsStandIn, demo_tdx_data
from ticketflow.dagkit import app_connection
from ticketflow.settings import PROJECT_ROOT


@pytest.fixture
def services(tmp_path):
    tts = TtsStandIn({"IT Support Technician": [3, 6, 9]}).start()
    tdx = TdxStandIn(TDX_BEID, TDX_WEB_SERVICES_KEY, demo_tdx_data()).start()
    smtp = SmtpStandIn(tmp_path / "mail").start()
    yield tts, tdx, smtp
    for service in (tts, tdx, smtp):
        service.stop()


@pytest.fixture
def stack_connections(services, monkeypatch):
    """Export the connections exactly as the local stack builds them, pointed at these stand-ins."""
    tts, tdx, smtp = services
    ports = replace(Ports(), tts=tts.port, tdx=tdx.port, smtp=smtp.port)
    for name, value in connections(ports, "postgresql://postgres@127.0.0.1:1/unused").items():
        monkeypatch.setenv(name, value)
    return services


def test_tts_answers_user_ids_for_a_role_through_the_http_hook(stack_connections):
    from airflow.providers.http.hooks.http import HttpHook

    tts, _, _ = stack_connections
    hook = HttpHook(method="GET", http_conn_id="tts_api")
    answer = hook.run("api/v1/tts/round-robin/", data={"role_name": "IT Support Technician"})
    assert answer.json() == [3, 6, 9]
    assert tts.calls[-1].query == {"role_name": "IT Support Technician"}
    assert requests.get(f"{tts.base_url}/api/v1/tts/round-robin/").status_code == 400


def test_tdx_requires_the_bearer_token_from_loginadmin(stack_connections):
    from airflow.sdk import BaseHook

    _, tdx, _ = stack_connections
    conn = BaseHook.get_connection("tdx_api")
    assert conn.host.endswith("/TDWebApi/api") and conn.extra_dejson["app_id"] == 46
    assert requests.get(f"{conn.host}/reports/1001?withData=true").status_code == 401
    refused = requests.post(f"{conn.host}/auth/loginadmin", json={"BEID": conn.login, "WebServicesKey": "wrong"})
    assert refused.status_code == 401

    token = requests.post(f"{conn.host}/auth/loginadmin",
                          json={"BEID": conn.login, "WebServicesKey": conn.password}).text
    headers = {"Authorization": f"Bearer {token}"}
    report = requests.get(f"{conn.host}/reports/1001", params={"withData": "true"}, headers=headers).json()
    assert [row["TicketID"] for row in report["DataRows"]] == [5001, 5002, 5003, 5004]
    assert {"ColumnName": "TicketID", "HeaderText": "TicketID"} in report["DisplayedColumns"]
    assert int(requests.get(f"{conn.host}/reports/1001", headers=headers).headers["X-RateLimit-Remaining"]) >= 0

    app = conn.extra_dejson["app_id"]
    posted = requests.post(f"{conn.host}/{app}/tickets/5001/feed", headers=headers,
                           json={"Comments": "Checked", "IsPrivate": True, "Notify": []})
    assert posted.status_code == 200
    feed = requests.get(f"{conn.host}/{app}/tickets/5001/feed", headers=headers).json()
    assert [(e["Body"], e["IsPrivate"]) for e in feed] == [("Checked", True)]
    assert requests.get(f"{conn.host}/{app}/tickets/999/feed", headers=headers).status_code == 404


def test_smtp_default_delivers_into_the_stand_ins_mailbox(stack_connections):
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    _, _, smtp = stack_connections
    with SmtpHook(smtp_conn_id="smtp_default") as hook:
        hook.send_email_smtp(to="ana@example.com", subject="Your Reservation is Confirmed!",
                             html_content="<p>See you soon</p>")
    [message] = smtp.messages()
    assert message["To"] == "ana@example.com"
    assert message["Subject"] == "Your Reservation is Confirmed!"
    assert message["From"] == "ticketflow@localhost"


def test_the_ticketing_db_connection_works_in_autocommit_and_utc_whatever_the_client_zone(app_db_url, monkeypatch):
    for name, value in connections(Ports(), app_db_url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PGTZ", "America/Toronto")  # a client (or server default) set up in Toronto
    with closing(app_connection()) as conn:
        assert conn.autocommit and conn.execute("SHOW TimeZone").fetchone()[0] == "UTC"
        assert conn.execute("SELECT timestamptz '2026-10-31 14:00Z' + interval '1 day'").fetchone()[0].isoformat() == (
            "2026-11-01T14:00:00+00:00")


def test_make_shell_gives_the_cli_the_stacks_environment():
    env = {**os.environ, "SHELL": "/bin/sh", "TICKETFLOW_DATABASE_URL": "postgresql://desk:pw@db.example:5432/tf",
           "TICKETFLOW_API_PORT": "18080", "PYTHONPATH": str(PROJECT_ROOT / "include")}
    shell = subprocess.run([sys.executable, "-m", "devstack.stack", "shell"], env=env, text=True, timeout=60,
                           input='echo "$AIRFLOW_CONN_TICKETING_DB|$AIRFLOW__CORE__EXECUTION_API_SERVER_URL'
                                 '|$AIRFLOW_HOME"\n',
                           capture_output=True, check=True)
    conn, execution_api, home = shell.stdout.strip().split("|")
    assert conn == "postgresql://desk:pw@db.example:5432/tf"
    assert execution_api.endswith(":18080/execution/") and home.endswith(".local/airflow")
