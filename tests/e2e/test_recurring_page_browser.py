"""The Recurring tickets page in a real browser, on the real Airflow: create a template from its form with the live
preview, pause it, see `recurring_tickets` leave it alone, resume it and skip an occurrence; fix a parked template
found from the dashboard; a read-only user sees no button and every change they try is refused.
"""

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from devstack.stack import ADMIN_USER, VIEWER_PASSWORD, VIEWER_USER
from tests.e2e.browsing import ARTIFACTS, log_in

pytestmark = pytest.mark.e2e
expect = pytest.importorskip("playwright.sync_api").expect
DAG_ID = "recurring_tickets"
ZONE = ZoneInfo("America/Toronto")
PREVIEWED = 10


def _daily_schedule(now: datetime) -> tuple[date, int]:
    """A start two days back at an hour of Toronto's day at least an hour from now (whatever time the test runs),
    so the preview's "after now" and the test's agree, and not 02:00, which a DST change can skip."""
    local_now = now.astimezone(ZONE)
    hour = 15 if 7 <= local_now.hour <= 10 else 9
    return local_now.date() - timedelta(days=2), hour


def _expected_occurrences(start: date, hour: int, now: datetime) -> list[datetime]:
    """Every day at `hour` Toronto wall time (RFC 5545: the wall time stays, the offset follows DST), after now."""
    days = (start + timedelta(days=n) for n in range(PREVIEWED + 5))
    return [at for at in (datetime.combine(day, time(hour), tzinfo=ZONE) for day in days) if at > now][:PREVIEWED]


class Recurring:
    """The recurring API with a token, as a script would call it."""

    def __init__(self, stack, token: str):
        self.base = f"{stack.api_url}/ticketflow/recurring"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **params) -> dict:
        answer = self.session.get(self.base + path, params=params, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def post(self, path: str, body: dict, expected: int = 200) -> dict:
        answer = self.session.post(self.base + path, json=body, timeout=30)
        assert answer.status_code == expected, answer.text
        return answer.json()


@pytest.fixture
def recurring(stack):
    return Recurring(stack, stack.token())


@pytest.fixture
def our_templates(stack_db):
    """The ids of the templates a test made; archived afterwards, so no later scheduled run picks them up."""
    made: list[int] = []
    yield made
    if made:
        stack_db.execute("UPDATE tickets SET archived = true WHERE id = ANY(%s)", (made,))


def _frame(page, url_end: str):
    return next(frame for frame in page.frames if frame.url.split("?")[0].endswith(url_end))


def _occurrences_of(stack_db, template_id: int) -> tuple[int, int]:
    """The tickets made from a template and the tasks those or the template itself got."""
    tickets = stack_db.execute("SELECT count(*) FROM tickets WHERE recurring_parent_id = %s",
                               (template_id,)).fetchone()[0]
    tasks = stack_db.execute("SELECT count(*) FROM tasks k JOIN tickets t ON t.id = k.ticket_id"
                             " WHERE t.id = %s OR t.recurring_parent_id = %s", (template_id, template_id)).fetchone()[0]
    return tickets, tasks


def test_a_template_made_in_the_form_previews_its_dates_and_once_paused_the_job_leaves_it_alone(
        api, stack, stack_db, browser, recurring, our_templates):
    api.wait_for_quiet_window(DAG_ID, seconds=300)  # no scheduled run between saving and pausing
    now = datetime.now(UTC)
    start, hour = _daily_schedule(now)
    expected = _expected_occurrences(start, hour, now)
    subject = f"Browser daily check {uuid.uuid4().hex[:8]}"

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    log_in(page, stack)
    page.get_by_role("link", name="Recurring tickets", exact=True).click()
    page.wait_for_url("**/plugin/ticketflow-recurring**")
    view = page.frame_locator("iframe").first

    view.get_by_role("button", name="New template").click()
    view.get_by_label("Subject", exact=True).fill(subject)
    view.get_by_label("Department", exact=True).fill("IT")
    view.get_by_label("Category", exact=True).fill("Ops")
    view.get_by_label("Every", exact=True).fill("1")
    view.get_by_label("Interval", exact=True).select_option("daily")
    view.get_by_label("Time zone", exact=True).fill("America/Toronto")
    view.get_by_label("Start (local)", exact=True).fill(f"{start.isoformat()}T{hour:02d}:00")

    # The live preview: the next ten, in Toronto and in UTC, as the API computes them.
    rows = view.locator("#preview tbody tr")
    rows.nth(PREVIEWED - 1).wait_for()
    assert rows.count() == PREVIEWED
    shown = [(datetime.fromisoformat(rows.nth(i).get_attribute("data-local")),
              datetime.fromisoformat(rows.nth(i).get_attribute("data-utc"))) for i in range(PREVIEWED)]
    assert [local for local, _ in shown] == expected
    assert [local.utcoffset() for local, _ in shown] == [at.utcoffset() for at in expected]  # Toronto's offsets
    assert [utc for _, utc in shown] == [at.astimezone(UTC) for at in expected]
    assert [utc.utcoffset() for _, utc in shown] == [timedelta(0)] * PREVIEWED
    first_row = rows.first.inner_text()
    assert f"{expected[0]:%Y-%m-%d %H:%M}" in first_row
    assert f"{expected[0].astimezone(UTC):%Y-%m-%d %H:%M} UTC" in first_row

    view.get_by_role("button", name="Save").click()
    row = view.locator("#templates tr", has_text=subject)
    row.wait_for()
    template_id = int(row.get_attribute("data-template-id"))
    our_templates.append(template_id)
    assert row.locator("[data-state-badge]").inner_text() == "active"
    saved = recurring.get(f"/templates/{template_id}")
    assert (saved["subject"], saved["timezone"], saved["schedule"]["interval"], saved["schedule"]["every"]) == (
        subject, "America/Toronto", "daily", 1)
    assert datetime.fromisoformat(saved["start"]) == datetime.combine(start, time(hour), tzinfo=ZONE)

    # A twin made through the API and left active shows what the run would have made of the paused one.
    twin = recurring.post("/templates", {key: saved[key] for key in (
        "department", "category", "schedule", "timezone", "start", "missed_policy")} | {"subject": f"{subject} twin"},
        expected=201)
    our_templates.append(twin["id"])

    row.get_by_role("button", name="Pause").click()
    dialog = view.locator("#action-dialog")
    dialog.get_by_label("Reason", exact=True).fill("on hold while the team moves")
    dialog.get_by_role("button", name="Confirm").click()
    view.locator(f'#templates tr[data-template-id="{template_id}"][data-state="paused"]').wait_for()
    paused = recurring.get(f"/templates/{template_id}")
    assert paused["state"] == "paused"

    run = api.trigger(DAG_ID)
    assert api.wait_for_run(DAG_ID, run["dag_run_id"])["state"] == "success"
    assert _occurrences_of(stack_db, twin["id"])[0] >= 1  # the run did create what was due ...
    assert _occurrences_of(stack_db, template_id) == (0, 0)  # ... and nothing, no task either, for the paused one
    assert [e for e in recurring.get(f"/templates/{template_id}/history")["entries"] if e["kind"] == "created"] == []
    after = recurring.get(f"/templates/{template_id}")
    assert (after["state"], after["next_occurrence"]) == ("paused", paused["next_occurrence"])

    page.reload()
    view = page.frame_locator("iframe").first
    view.locator(f'#templates tr[data-template-id="{template_id}"][data-state="paused"]').wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    _frame(page, "/ticketflow/recurring-tickets").locator("body").screenshot(path=str(ARTIFACTS / "recurring-page.png"))

    # Resumed with the default choice, what fell due while it was paused is recorded as skipped, by whom.
    row = view.locator(f'#templates tr[data-template-id="{template_id}"]')
    row.get_by_role("button", name="Resume").click()
    dialog = view.locator("#action-dialog")
    expect(dialog.locator('input[name="missed"][value="skip"]')).to_be_checked()
    dialog.get_by_role("button", name="Confirm").click()
    view.locator(f'#templates tr[data-template-id="{template_id}"][data-state="active"]').wait_for()
    resumed_by = datetime.now(UTC)
    fell_due = [at for at in (datetime.combine(start + timedelta(days=n), time(hour), tzinfo=ZONE) for n in range(4))
                if at <= resumed_by]
    skipped = recurring.get(f"/templates/{template_id}/history")["entries"]
    assert sorted(datetime.fromisoformat(e["occurrence"]) for e in skipped if e["kind"] == "skipped") == fell_due
    assert {e["by"] for e in skipped} == {ADMIN_USER}

    # Skip one: the next occurrence, with a reason.
    upcoming = recurring.get(f"/templates/{template_id}")["next_occurrences"]
    row.get_by_role("button", name="Skip…").click()
    expect(dialog.get_by_label("Occurrence", exact=True)).to_have_value(upcoming[0]["utc"])
    dialog.get_by_label("Reason", exact=True).fill("site closed that day")
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog).to_be_hidden()
    newest = recurring.get(f"/templates/{template_id}/history")["entries"][0]
    assert (newest["kind"], newest["by"], newest["reason"]) == ("skipped", ADMIN_USER, "site closed that day")
    assert datetime.fromisoformat(newest["occurrence"]) == datetime.fromisoformat(upcoming[0]["utc"])
    assert recurring.get(f"/templates/{template_id}")["next_occurrences"][0] == upcoming[1]
    assert [text for text in console if "Content Security Policy" in text] == []  # the page needs nothing it forbids


def test_a_read_only_user_sees_no_button_and_every_change_is_refused(stack, stack_db, browser, recurring,
                                                                        our_templates):
    now = datetime.now(UTC)
    start, hour = _daily_schedule(now)
    body = {"subject": f"Viewer target {uuid.uuid4().hex[:8]}", "department": "IT", "category": "Ops",
            "schedule": {"interval": "daily", "every": 1, "rrule": None}, "timezone": "America/Toronto",
            "start": datetime.combine(start + timedelta(days=3), time(hour), tzinfo=ZONE).isoformat()}
    active = recurring.post("/templates", body, expected=201)
    paused = recurring.post("/templates", body | {"subject": body["subject"] + " paused"}, expected=201)
    our_templates.extend([active["id"], paused["id"]])
    paused = recurring.post(f"/templates/{paused['id']}/pause", {"reason": "viewer test"})
    before = {t["id"]: recurring.get(f"/templates/{t['id']}") for t in (active, paused)}

    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    log_in(page, stack, VIEWER_USER, VIEWER_PASSWORD)
    page.get_by_role("link", name="Recurring tickets", exact=True).click()
    page.wait_for_url("**/plugin/ticketflow-recurring**")
    view = page.frame_locator("iframe").first
    view.locator(f'#templates tr[data-template-id="{active["id"]}"]').wait_for()  # the viewer may look ...
    assert view.locator("[data-action]").count() == 0  # ... but gets no button that changes anything
    for name in ("New template", "Edit", "Pause", "Resume", "Skip…", "Fix schedule", "Save"):
        assert view.get_by_role("button", name=name).count() == 0, name
    assert view.locator("#template-form").count() == 0 and view.locator("#action-dialog").count() == 0

    # The page's own origin and the viewer's cookie, exactly what the page's script would send: refused.
    frame = _frame(page, "/ticketflow/recurring-tickets")
    next_occurrence = before[active["id"]]["next_occurrences"][0]["utc"]
    attempts = [("POST", "/templates", body)]
    for template_id in before:
        attempts += [("PATCH", f"/templates/{template_id}", {"subject": "taken over"}),
                     ("POST", f"/templates/{template_id}/pause", {"reason": "viewer"}),
                     ("POST", f"/templates/{template_id}/resume", {"missed": "skip"}),
                     ("POST", f"/templates/{template_id}/skip", {"occurrence": next_occurrence, "reason": "viewer"}),
                     ("POST", f"/templates/{template_id}/move", {"occurrence": next_occurrence,
                                                                  "to": now.isoformat(), "reason": "viewer"}),
                     ("POST", f"/templates/{template_id}/reschedule", {"from": now.isoformat(), "reason": "viewer"})]
    answers = frame.evaluate("""async (attempts) => Promise.all(attempts.map(async ([method, path, body]) => {
        const answer = await fetch("/ticketflow/recurring" + path, {method, body: JSON.stringify(body),
                                   headers: {"Content-Type": "application/json"}});
        return [method, path, answer.status, await answer.text()];
    }))""", attempts)
    assert [(method, path, status) for method, path, status, _ in answers] == [
        (method, path, 403) for method, path, _ in attempts]
    assert all("may not change the data of recurring_tickets" in text for *_, text in answers)
    # Reading stays open to them: the preview is a read, and so is each template.
    preview = frame.evaluate("""async (body) => (await fetch("/ticketflow/recurring/preview", {method: "POST",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})).status""",
                             {key: body[key] for key in ("schedule", "timezone", "start")} | {"count": 3})
    assert preview == 200

    assert {template_id: recurring.get(f"/templates/{template_id}") for template_id in before} == before
    assert stack_db.execute("SELECT count(*) FROM tickets WHERE subject = %s", (body["subject"],)).fetchone()[0] == 1



def test_a_parked_template_is_on_the_dashboard_and_fixed_from_the_pages_form(api, stack, stack_db, browser,
                                                                            recurring, our_templates):
    """A template written straight into the database with a rule the job cannot follow gets parked by the run; the
    dashboard's tile names it and links to the page, where Fix schedule opens the form at the schedule."""
    subject = f"Fortnightly backup {uuid.uuid4().hex[:8]}"
    template_id = stack_db.execute(
        "INSERT INTO tickets (subject, department, category, is_recurring, recurrence_rule, recurrence_timezone,"
        " recurrence_start) VALUES (%s, 'IT', 'Backups', true, 'FREQ=FORTNIGHTLY', 'Europe/Paris',"
        " now() - interval '1 day') RETURNING id", (subject,)).fetchone()[0]
    our_templates.append(template_id)
    run = api.trigger(DAG_ID)
    assert api.wait_for_run(DAG_ID, run["dag_run_id"])["state"] == "success"
    parked = recurring.get(f"/templates/{template_id}")
    assert parked["state"] == "parked" and "FORTNIGHTLY" in parked["parked_reason"]

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(page, stack)
    page.get_by_role("link", name="Ticketflow", exact=True).click()
    dashboard = page.frame_locator("iframe").first
    tile = dashboard.locator('[data-tile="parked-templates"]')
    assert int(tile.locator('[data-count="parked"]').inner_text()) >= 1
    assert f"#{template_id}" in tile.locator("li", has_text="FORTNIGHTLY").inner_text()
    tile.get_by_role("link", name="Fix them on the Recurring tickets page").click()

    view = page.frame_locator("iframe").first
    row = view.locator(f'#templates tr[data-template-id="{template_id}"]')
    row.wait_for()
    expect(view.get_by_label("State", exact=True)).to_have_value("parked")  # the link's filter
    assert row.get_attribute("data-state") == "parked" and "parked" in row.get_attribute("class")
    assert "FORTNIGHTLY" in row.locator("[data-parked-reason]").inner_text()

    row.get_by_role("button", name="Fix schedule").click()
    rrule = view.get_by_label("RRULE", exact=True)
    expect(rrule).to_have_value("FREQ=FORTNIGHTLY")
    expect(rrule).to_be_focused()  # the form opens at what to fix
    view.locator("#preview-status", has_text="not valid").wait_for()  # the API's own verdict on the old rule
    expect(view.locator('[data-error-for="rrule"]')).to_contain_text("FORTNIGHTLY")
    rrule.fill("FREQ=WEEKLY;BYDAY=MO")
    rows = view.locator("#preview tbody tr")
    rows.nth(PREVIEWED - 1).wait_for()
    mondays = [datetime.fromisoformat(rows.nth(i).get_attribute("data-local")) for i in range(PREVIEWED)]
    assert all(at.weekday() == 0 and at.tzinfo is not None for at in mondays)
    assert all(later - earlier == timedelta(days=7) for earlier, later in zip(mondays, mondays[1:], strict=False))
    ARTIFACTS.mkdir(exist_ok=True)
    _frame(page, "/ticketflow/recurring-tickets").locator("body").screenshot(path=str(ARTIFACTS / "recurring-fix.png"))

    view.get_by_role("button", name="Save").click()
    row.wait_for(state="detached")  # no longer parked: gone from the parked list
    fixed = recurring.get(f"/templates/{template_id}")
    assert (fixed["state"], fixed["parked_reason"], fixed["schedule"]["rrule"]) == (
        "active", None, "FREQ=WEEKLY;BYDAY=MO")
