"""The health dashboard in a real browser: log into the Airflow UI, open it from the navigation, read the charts.

Headless Debian Chromium driven by Playwright (`tests/e2e/browsing.py`).
"""

import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
import requests

from devstack import free_port
from tests.e2e.browsing import ARTIFACTS, log_in

pytestmark = pytest.mark.e2e


def _run_with_work(api, stack, dag_id: str, seed_sql: str) -> str:
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        conn.execute(seed_sql)
    run = api.trigger(dag_id)
    assert api.wait_for_run(dag_id, run["dag_run_id"])["state"] == "success"
    return run["dag_run_id"]


def _processed(stack_db, run_id: str) -> int:
    return stack_db.execute("SELECT processed FROM automation_runs WHERE run_id = %s", (run_id,)).fetchone()[0]


def _a_run_that_completes_four_events(api, stack, stack_db, attempts: int = 3) -> str:
    """Trigger event_lifecycle over four ended events and return its run id.

    The quiet window keeps the schedule away, but when the machine is loaded (CI runs the Celery tests
    beside these) a scheduled run can still start first and take the events. That is retried, but only
    once it is shown to be what happened.
    """
    def scheduled_runs_that_completed_four() -> set[str]:
        return {run_id for (run_id,) in stack_db.execute(
            "SELECT run_id FROM automation_runs WHERE dag_id = 'event_lifecycle' AND run_id LIKE 'scheduled%'"
            " AND processed >= 4").fetchall()}

    for attempt in range(attempts):
        api.wait_for_quiet_window("event_lifecycle", seconds=90)
        earlier = scheduled_runs_that_completed_four()
        batch = f"ended {attempt}."
        ended = (f"INSERT INTO events (title, start_date, end_date, status) SELECT '{batch}' || g,"
                 " now() - interval '3 hours', now() - interval '1 hour', 'draft' FROM generate_series(1, 4) AS g;"
                 f" UPDATE events SET status = 'confirmed' WHERE title LIKE '{batch}%'")
        run_id = _run_with_work(api, stack, "event_lifecycle", ended)
        if _processed(stack_db, run_id) == 4:
            return run_id
        completed = stack_db.execute("SELECT count(*) FROM events WHERE title LIKE %s AND status = 'completed'",
                                     (f"{batch}%",)).fetchone()[0]
        taken_by = scheduled_runs_that_completed_four() - earlier
        assert completed == 4 and taken_by, (f"{run_id} did not complete its four events, and no new scheduled run"
                                             f" did ({completed} of them are completed)")
    pytest.fail(f"a scheduled run took the events first {attempts} times")


def test_the_dashboard_opens_from_the_navigation_and_charts_the_runs_the_test_made(api, stack, stack_db, browser):
    first = _a_run_that_completes_four_events(api, stack, stack_db)
    second = _run_with_work(api, stack, "event_lifecycle", "SELECT 1")
    audited = {first: 4, second: _processed(stack_db, second)}
    assert audited[second] == 0

    def audited_runs() -> int:
        return stack_db.execute("SELECT count(*) FROM automation_runs WHERE dag_id = 'event_lifecycle'").fetchone()[0]

    runs_before_page = audited_runs()
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    console = []
    page.on("console", lambda message: console.append(message.text))
    log_in(page, stack)
    page.get_by_role("link", name="Ticketflow", exact=True).click()
    page.wait_for_url("**/plugin/ticketflow-health**")

    dashboard = page.frame_locator("iframe").first
    section = dashboard.locator('section[data-dag-id="event_lifecycle"]')
    section.wait_for()
    for run_id, processed in audited.items():
        bars = section.locator(f'svg[data-chart="event_lifecycle work per run"] rect[data-run-id="{run_id}"]')
        assert bars.count() == 2
        assert bars.first.get_attribute("data-value") == str(processed)
        assert section.locator(f'svg[data-chart="event_lifecycle duration per run"] rect[data-run-id="{run_id}"]'
                               ).count() == 1
    shown = int(section.locator('[data-count="runs-24h"]').inner_text())
    assert runs_before_page <= shown <= audited_runs()  # a scheduled run may land while the page loads
    link = section.get_by_role("link", name="Event lifecycle")
    assert link.get_attribute("href").endswith("/dags/event_lifecycle") and link.get_attribute("target") == "_top"

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-in-airflow.png"))
    frame = next(f for f in page.frames if f.url.endswith("/ticketflow/dashboard"))
    frame.locator("body").screenshot(path=str(ARTIFACTS / "dashboard.png"))
    assert Path(ARTIFACTS / "dashboard.png").stat().st_size > 10_000
    assert [text for text in console if "Content Security Policy" in text] == []  # the page needs nothing it forbids


def _a_pending_task(stack) -> tuple[int, psycopg.Connection]:
    conn = psycopg.connect(stack.app_db_url, autocommit=True)
    tag = uuid.uuid4().hex[:8]
    workflow = conn.execute("INSERT INTO workflows (name, department, category, is_published, status)"
                            " VALUES ('Browser', %s, 'Probe', true, 'deployed') RETURNING id", (tag,)).fetchone()[0]
    conn.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES"
                 " (%s, 'Diagnose', 'IT Support Technician', 1), (%s, 'Approve', 'Service Desk Lead', 2)",
                 (workflow, workflow))
    ticket = conn.execute("INSERT INTO tickets (subject, department, category, next_allocation_at)"
                          " VALUES ('Browser target', %s, 'Probe', now() + interval '1 day') RETURNING id",
                          (tag,)).fetchone()[0]
    created = requests.post(f"{stack.api_url}/ticketflow/tasks/create_task_for_ticket", json={"ticket_id": ticket},
                            headers={"Authorization": f"Bearer {stack.token()}"}, timeout=30)
    assert created.status_code == 201, created.text
    return created.json()["task_id"], conn


#: The outside probe's page: a form posting text/plain (no preflight) and a no-cors fetch, both with the cookie.
ATTACK_PAGE = """<!doctype html><html><body>
<form method="post" enctype="text/plain" action="{api}/ticketflow/tasks/{task}/complete_task">
<input type="hidden" name='{{"x": "' value='"}}'></form>
<script>
fetch("{api}/ticketflow/tasks/{task}/move_to_next_step", {{method: "POST", mode: "no-cors", credentials: "include",
      headers: {{"Content-Type": "text/plain"}}, body: "{{}}"}}).finally(() => document.forms[0].submit());
</script></body></html>"""


@pytest.fixture
def attack_site(stack):
    """A page on another port of the same host: the same site as the UI, so the browser sends its cookie along."""
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield pages, f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_elsewhere_on_the_site_cannot_change_a_task_with_the_ui_cookie_but_the_plugins_pages_can(
        stack, browser, attack_site):
    task_id, conn = _a_pending_task(stack)
    state = lambda: conn.execute("SELECT status, current_step_id, users FROM tasks WHERE task_id = %s",  # noqa: E731
                                 (task_id,)).fetchone()
    before = state()
    pages, site = attack_site
    pages["/win-a-prize"] = ATTACK_PAGE.format(api=stack.api_url, task=task_id)
    page = browser.new_page()
    log_in(page, stack)

    answers = []
    page.on("response", lambda answer: answers.append(answer) if "/ticketflow/tasks/" in answer.url else None)
    with page.expect_response(lambda answer: answer.url.endswith("/complete_task")):
        page.goto(f"{site}/win-a-prize")
    page.wait_for_load_state()
    # 403, not 401: the browser did send the UI's cookie, and the origin check refused the request.
    assert sorted((answer.url.rsplit("/", 1)[1], answer.status) for answer in answers) == [
        ("complete_task", 403), ("move_to_next_step", 403)]
    assert "own pages" in answers[-1].text()
    assert state() == before

    page.goto(f"{stack.api_url}/ticketflow/dashboard")  # a plugin page changes state as pages should: a JSON fetch
    status, task = page.evaluate("""async (url) => {
        const answer = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
        return [answer.status, await answer.json()];
    }""", f"{stack.api_url}/ticketflow/tasks/{task_id}/complete_task")
    assert (status, task["status"]) == (200, "completed") and state()[0] == "completed"
    conn.close()
