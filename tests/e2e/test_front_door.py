"""The front door: `make run` as the README gives it comes up, stays up, lets its login in, and Ctrl-C stops all of it.

The session's Airflow is `make run` itself (tests/e2e/conftest.py), so every other e2e test runs against
what a new user gets. The first test here reads the banner; the last one, after every other test, checks
that nothing died meanwhile and stops it the way a user does.
"""

import socket
import subprocess
import time

import psutil
import psycopg
import pytest
import requests

from devstack.stack import ADMIN_PASSWORD, ADMIN_USER, VIEWER_PASSWORD, VIEWER_USER
from ticketflow.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e
#: What a process that the stack started must be doing to count as "still up".
STILL_UP_AFTER_SECONDS = 30
STOPPED_WITHIN_SECONDS = 60


def _health(stack) -> dict:
    return requests.get(f"{stack.api_url}/api/v2/monitor/health", timeout=10).json()


def _all_healthy(health: dict) -> bool:
    return all((component or {}).get("status") == "healthy" for component in health.values())


def _command_lines(processes: list[psutil.Process]) -> list[str]:
    lines = []
    for process in processes:
        try:
            lines.append(" ".join(process.cmdline()))
        except psutil.Error:
            continue
    return lines


def test_make_run_prints_its_banner_and_airflow_is_healthy(make_run, stack):
    banner = make_run.wait_for_banner()
    assert f"Airflow UI and REST API: http://localhost:{make_run.ports.api}" in banner
    assert f"login: {ADMIN_USER} / {ADMIN_PASSWORD}" in banner and f"{VIEWER_USER} / {VIEWER_PASSWORD}" in banner
    assert f"postgresql://ticketflow:***@127.0.0.1:{make_run.ports.postgres}/ticketflow" in banner
    assert str(make_run.home / "mailbox") in banner and str(make_run.home / "logs") in banner
    health = _health(stack)
    assert set(health) >= {"metadatabase", "scheduler", "triggerer", "dag_processor"} and _all_healthy(health)
    assert set(make_run.at_banner) == {*make_run.COMPONENTS, "make --no-print-directory run", "devstack.stack run"}


def test_make_run_listens_on_loopback_only_and_needs_passwords(make_run, stack):
    listening = make_run.listening()
    expected = {make_run.ports.api, make_run.ports.postgres, make_run.ports.tts, make_run.ports.tdx,
                make_run.ports.smtp, make_run.ports.worker_logs, make_run.ports.trigger_logs,
                make_run.ports.scheduler_health, make_run.ports.webhook}
    assert set(listening) == expected
    assert {port: addresses for port, addresses in listening.items() if addresses != {"127.0.0.1"}} == {}
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{make_run.ports.postgres}/postgres", connect_timeout=5)
    for private in (make_run.home / "pg.passwords.json", make_run.home / "airflow" / "passwords.json",
                    make_run.home / "airflow" / "secrets.json"):
        assert private.stat().st_mode & 0o077 == 0, private
    with psycopg.connect(stack.app_db_url, connect_timeout=5) as conn:  # the DAGs' own login, not a superuser
        assert conn.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
                            ).fetchone() == ("ticketflow", False)


def test_make_psql_opens_the_application_database(make_run):
    env = {**make_run.ports.environment(), "TICKETFLOW_LOCAL_DIR": str(make_run.home), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["make", "--no-print-directory", "-s", "psql"], cwd=PROJECT_ROOT, env=env, text=True,
                          input="SELECT current_database() || '/' || current_user;\n", capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "ticketflow/ticketflow" in done.stdout


@pytest.mark.stops_the_stack
def test_make_run_stays_up_and_ctrl_c_stops_every_process_and_port(make_run, stack):
    up_for = time.monotonic() - make_run.banner_at
    if up_for < STILL_UP_AFTER_SECONDS:
        time.sleep(STILL_UP_AFTER_SECONDS - up_for)
    # Still up: each component is the very process it was when the banner came (none died and came back),
    # at least 30 s (and every other e2e test) later, and it still answers.
    assert make_run.make.poll() is None, "".join(make_run.output)[-3000:]
    assert make_run.components() == make_run.at_banner
    assert _all_healthy(_health(stack))
    login = requests.post(f"{stack.api_url}/auth/token", json={"username": ADMIN_USER, "password": ADMIN_PASSWORD},
                          timeout=10)
    assert login.status_code == 201
    dags = requests.get(f"{stack.api_url}/api/v2/dags", params={"limit": 100}, timeout=10,
                        headers={"Authorization": f"Bearer {login.json()['access_token']}"})
    published = {path.stem for path in (PROJECT_ROOT / "dags").glob("*.py")}
    assert {dag["dag_id"] for dag in dags.json()["dags"]} >= published

    everything = make_run.processes()
    make_run.interrupt()
    deadline = time.monotonic() + STOPPED_WITHIN_SECONDS
    make_run.make.wait(timeout=STOPPED_WITHIN_SECONDS)
    _, left = psutil.wait_procs(everything, timeout=max(0.1, deadline - time.monotonic()))
    output = "".join(make_run.output)[-3000:]
    assert _command_lines(left) == [] and _command_lines(make_run.processes()) == [], output
    assert "stopping Ticketflow..." in output and "Ticketflow stopped." in output
    assert make_run.listening() == {}
    for port in make_run.ports.environment().values():
        with socket.socket() as probe:  # free again: another server could listen there now
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # connections closed linger in TIME_WAIT
            probe.bind(("127.0.0.1", int(port)))
            probe.listen()
