"""The recurring-template API in process, on real PostgreSQL: every action, its 422s, 404s and 409s, and 403s.

The app is the plugin's own (`create_app`) on the test database. Only Airflow's
auth manager is stood in for: the `X-Test-User` header names the caller, and
"viewer" may read the recurring_tickets DAG but not edit it. The real auth
manager's answers are covered by tests/e2e/test_recurring_api_e2e.py.
"""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from ticketflow import clock
from ticketflow.audit import AuditedRun, RunWindow
from ticketflow.recurring import create_due_occurrences

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday; the API's clock is set to it
MONDAY_9_TORONTO = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


class StandInUser:
    def __init__(self, name: str):
        self.name = name

    def get_name(self) -> str:
        return self.name

    def get_id(self) -> str:
        return self.name


class StandInAuthManager:
    """Everyone reads; only "viewer" may not edit."""

    def is_authorized_dag(self, method, details, user):
        return method == "GET" or user.get_name() != "viewer"


def caller(request: Request) -> StandInUser:
    return StandInUser(request.headers.get("x-test-user", "ana"))


@pytest.fixture
def api(app_db_url, db, monkeypatch):
    from airflow.api_fastapi.core_api.security import get_user

    from ticketflow.web import auth
    from ticketflow.web.app import create_app
    from ticketflow.web.database import Database

    monkeypatch.setattr(auth, "get_auth_manager", lambda: StandInAuthManager())
    monkeypatch.setattr(clock, "utc_now", lambda: NOW)
    monkeypatch.setenv("TICKETFLOW_TIMEZONE", "America/Toronto")
    database = Database(lambda: app_db_url)
    app = create_app(database, users_for_role=lambda role: [])
    app.dependency_overrides[get_user] = caller
    with TestClient(app, base_url="http://testserver") as client:
        yield client


def body(**fields):
    return {"subject": "Weekday standup notes", "department": "IT", "category": "Ops",
            "schedule": {"rrule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"}, "timezone": "America/Toronto",
            "start": "2026-03-02T09:00:00-05:00", **fields}


def run(db, due, run_id="r"):
    with AuditedRun(db, RunWindow("recurring_tickets", run_id, due)) as audited:
        create_due_occurrences(audited, "America/Toronto")
    return audited.outcome


def created(db, template_id):
    return [r[0] for r in db.execute("SELECT occurrence_at FROM tickets WHERE recurring_parent_id = %s"
                                     " ORDER BY occurrence_at", (template_id,))]


def snapshot(db):
    return db.execute("SELECT (SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY id), '[]') FROM tickets t),"
                      " (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY template_id, occurrence_at), '[]')"
                      "  FROM recurring_occurrence_skips s)").fetchone()


def test_create_then_get_shows_the_template_and_its_next_ten_weekdays(api, db):
    answer = api.post("/recurring/templates", json=body())
    assert answer.status_code == 201, answer.text
    template = answer.json()
    assert template["state"] == "active" and template["next_occurrence"] == "2026-03-02T14:00:00Z"
    assert template["schedule"] == {"interval": None, "every": None, "rrule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"}
    detail = api.get(f"/recurring/templates/{template['id']}").json()
    locals_ = [o["local"] for o in detail["next_occurrences"]]
    assert len(locals_) == 10 and locals_[0] == "2026-03-02T09:00:00-05:00"
    assert "2026-03-09T09:00:00-04:00" in locals_  # 09:00 local across the spring change
    assert detail["next_occurrences"][5]["utc"] == "2026-03-09T13:00:00Z"
    assert not any(datetime.fromisoformat(o).weekday() >= 5 for o in locals_)


def test_the_timezone_defaults_to_the_configured_one_and_an_interval_schedule_works(api):
    answer = api.post("/recurring/templates", json=body(timezone=None, schedule={"interval": "monthly",
                                                                                 "every": 1},
                                                         start="2028-01-31T09:00:00-05:00"))
    assert answer.status_code == 201, answer.text
    template = answer.json()
    assert template["timezone"] == "America/Toronto"
    preview = api.get(f"/recurring/templates/{template['id']}/preview", params={"count": 4}).json()
    assert [o["local"][:10] for o in preview["occurrences"]] == ["2028-01-31", "2028-02-29", "2028-03-31",
                                                                  "2028-04-30"]


@pytest.mark.parametrize("fields, loc", [
    ({"subject": " "}, ["body", "subject"]),
    ({"subject": "x" * 488}, ["body", "subject"]),
    ({"department": None}, ["body", "department"]),
    ({"schedule": {"rrule": "FREQ=WEEKLY;BYDAY=FUNDAY"}}, ["body", "schedule", "rrule"]),
    ({"schedule": {"rrule": "FREQ=HOURLY"}}, ["body", "schedule", "rrule"]),
    ({"schedule": {"interval": "daily", "rrule": "FREQ=DAILY"}}, ["body", "schedule"]),
    ({"schedule": {"interval": "hourly"}}, ["body", "schedule", "interval"]),
    ({"schedule": {"interval": "daily", "every": 0}}, ["body", "schedule", "interval", "every"]),
    ({"schedule": {"interval": "daily", "every": 10**30}}, ["body", "schedule", "interval", "every"]),
    ({"timezone": "CET"}, ["body", "timezone"]),
    ({"timezone": "Mars/Base"}, ["body", "timezone"]),
    ({"start": "20000-01-01T00:00:00Z"}, ["body", "start"]),
    ({"start": "2026-03-02 09:00:00Z"}, ["body", "start"]),
    ({"start": "2026-03-02T09:00:00Z\n"}, ["body", "start"]),
    ({"start": "2026-13-02T09:00"}, ["body", "start"]),
    ({"start": "2026-03-02T09:00", "timezone": "Mars/Base"}, ["body", "timezone"]),
    ({"start": 0}, ["body", "start"]),
    ({"start": 10**20}, ["body", "start"]),
    ({"end": "2026-03-01T09:00:00Z"}, ["body", "end"]),
    ({"lead_time_seconds": -1}, ["body", "lead_time_seconds"]),
    ({"lead_time_seconds": False}, ["body", "lead_time_seconds"]),
    ({"lead_time_seconds": "60"}, ["body", "lead_time_seconds"]),
    ({"schedule": {"interval": "daily", "every": True}}, ["body", "schedule", "interval", "every"]),
    ({"missed_policy": "some"}, ["body", "missed_policy"]),
    ({"priority": "asap"}, ["body", "priority"]),
    ({"colour": "red"}, ["body", "colour"]),
])
def test_a_bad_template_is_a_422_naming_the_field_and_nothing_is_written(api, db, fields, loc):
    before = snapshot(db)
    answer = api.post("/recurring/templates", json=body(**fields))
    assert answer.status_code == 422, answer.text
    assert any(error["loc"][:len(loc)] == loc for error in answer.json()["detail"]), answer.json()
    assert snapshot(db) == before


def test_a_schedule_with_the_other_kinds_fields_null_is_accepted(api):
    """A form sends every field of the schedule, the unused ones null."""
    for schedule in ({"interval": "daily", "every": 1, "rrule": None},
                     {"interval": None, "every": None, "rrule": "FREQ=DAILY"}):
        answer = api.post("/recurring/templates", json=body(schedule=schedule))
        assert answer.status_code == 201, answer.text


def test_local_date_times_are_read_in_the_templates_zone_as_the_job_reads_wall_times(api, db):
    """A form's datetime-local value has no offset: the server reads it, DST gaps as RFC 5545 says."""
    gap = api.post("/recurring/templates", json=body(start="2026-03-08T02:30", schedule={"interval": "daily"}))
    assert gap.status_code == 201, gap.text
    assert gap.json()["start"] == "2026-03-08T07:30:00Z"  # 02:30 does not exist that night: 03:30 EDT
    preview = api.post("/recurring/preview", json={"schedule": {"interval": "daily"}, "timezone": "America/Toronto",
                                                   "start": "2026-11-01T01:30", "count": 2}).json()
    assert [o["utc"] for o in preview["occurrences"]] == ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
    template = gap.json()["id"]
    # the series lives at its start's wall time, 03:30 local
    skipped = api.post(f"/recurring/templates/{template}/skip", json={"occurrence": "2026-03-09T03:30",
                                                                      "reason": "local"})
    assert skipped.status_code == 200, skipped.text
    assert db.execute("SELECT occurrence_at FROM recurring_occurrence_skips WHERE template_id = %s",
                      (template,)).fetchone()[0] == datetime(2026, 3, 9, 7, 30, tzinfo=UTC)
    edited = api.patch(f"/recurring/templates/{template}", json={"timezone": "Europe/London",
                                                                 "end": "2027-01-01T00:00"})
    assert edited.json()["end"] == "2027-01-01T00:00:00Z"


def test_edit_changes_the_fields_given_and_refuses_bad_ones_naming_them(api, db):
    template = api.post("/recurring/templates", json=body()).json()
    edited = api.patch(f"/recurring/templates/{template['id']}", json={"subject": "Standup", "priority": "high",
                                                                        "lead_time_seconds": 3600})
    assert edited.status_code == 200, edited.text
    assert (edited.json()["subject"], edited.json()["priority"], edited.json()["lead_time_seconds"]) == (
        "Standup", "high", 3600)
    before = snapshot(db)
    for change, loc in (({"schedule": {"rrule": "FREQ=NEVER"}}, ["body", "schedule", "rrule"]),
                        ({"subject": None}, ["body", "subject"]),
                        ({"end": "2020-01-01T00:00:00Z"}, ["body", "end"])):
        refused = api.patch(f"/recurring/templates/{template['id']}", json=change)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][:len(loc)] == loc
    assert snapshot(db) == before
    assert api.patch("/recurring/templates/999", json={"subject": "x"}).status_code == 404
    defaults = api.patch(f"/recurring/templates/{template['id']}", json={
        "priority": None, "missed_policy": None, "lead_time_seconds": None, "description": None})
    assert defaults.status_code == 200, defaults.text
    assert [defaults.json()[k] for k in ("priority", "missed_policy", "lead_time_seconds", "description")] == [
        "medium", "latest_only", 0, ""]


def test_pause_keeps_the_job_away_and_resume_skips_what_fell_due_meanwhile(api, db):
    template = api.post("/recurring/templates", json=body()).json()
    paused = api.post(f"/recurring/templates/{template['id']}/pause", json={"reason": "office closed"})
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    assert (paused.json()["paused_by"], paused.json()["pause_reason"]) == ("ana", "office closed")
    assert api.post(f"/recurring/templates/{template['id']}/pause", json={}).status_code == 409
    assert run(db, MONDAY_9_TORONTO + timedelta(days=2)).changed == 0
    assert created(db, template["id"]) == []
    listed = api.get("/recurring/templates", params={"state": "paused"}).json()
    assert [t["id"] for t in listed["templates"]] == [template["id"]] and listed["total"] == 1
    assert api.get("/recurring/templates", params={"state": "active"}).json()["total"] == 0

    resumed = api.post(f"/recurring/templates/{template['id']}/resume", json={"missed": "skip"})
    assert resumed.status_code == 200 and resumed.json()["state"] == "active"
    assert api.post(f"/recurring/templates/{template['id']}/resume").status_code == 409
    # NOW is Monday 08:00Z (03:00 in Toronto): nothing had fallen due yet, so nothing was skipped
    run(db, MONDAY_9_TORONTO + timedelta(minutes=5), run_id="r2")
    assert created(db, template["id"]) == [MONDAY_9_TORONTO]


def test_resume_with_skip_records_every_occurrence_that_fell_due_while_paused(api, db, monkeypatch):
    template = api.post("/recurring/templates", json=body()).json()
    api.post(f"/recurring/templates/{template['id']}/pause", json={"reason": "holidays"})
    monkeypatch.setattr(clock, "utc_now", lambda: MONDAY_9_TORONTO + timedelta(days=2, hours=1))
    api.post(f"/recurring/templates/{template['id']}/resume", headers={"x-test-user": "bo"})
    run(db, MONDAY_9_TORONTO + timedelta(days=3, minutes=5))
    assert created(db, template["id"]) == [MONDAY_9_TORONTO + timedelta(days=3)]
    history = api.get(f"/recurring/templates/{template['id']}/history").json()
    assert [(e["kind"], e["occurrence"][:10], e["by"]) for e in history["entries"]] == [
        ("created", "2026-03-05", None), ("skipped", "2026-03-04", "bo"), ("skipped", "2026-03-03", "bo"),
        ("skipped", "2026-03-02", "bo")]
    assert history["total"] == 4 and history["entries"][0]["ticket_id"] is not None


def test_upcoming_is_the_next_ticket_the_job_will_make_not_the_pointer(api, db, monkeypatch):
    """After a resume that skipped three days, the pointer still stands on the first of them until a run passes
    it; what the list and the template show as next is the first occurrence the job will create."""
    template = api.post("/recurring/templates", json=body()).json()
    assert template["upcoming"] == template["next_occurrence"] == "2026-03-02T14:00:00Z"
    api.post(f"/recurring/templates/{template['id']}/pause")
    assert api.get(f"/recurring/templates/{template['id']}").json()["upcoming"] is None
    monkeypatch.setattr(clock, "utc_now", lambda: MONDAY_9_TORONTO + timedelta(days=2, hours=1))
    resumed = api.post(f"/recurring/templates/{template['id']}/resume", json={"missed": "skip"}).json()
    assert resumed["next_occurrence"] == "2026-03-02T14:00:00Z"  # the pointer: the job's, untouched
    assert resumed["upcoming"] == "2026-03-05T14:00:00Z"  # Thursday: Monday to Wednesday were skipped
    listed = api.get("/recurring/templates").json()["templates"]
    assert [(t["id"], t["upcoming"]) for t in listed] == [(template["id"], "2026-03-05T14:00:00Z")]
    run(db, MONDAY_9_TORONTO + timedelta(days=3, minutes=5))
    assert created(db, template["id"]) == [MONDAY_9_TORONTO + timedelta(days=3)]
    assert api.get(f"/recurring/templates/{template['id']}").json()["upcoming"] == "2026-03-06T14:00:00Z"


def test_resume_with_the_policy_leaves_what_fell_due_to_the_missed_policy(api, db, monkeypatch):
    template = api.post("/recurring/templates", json=body(missed_policy="create_all")).json()
    api.post(f"/recurring/templates/{template['id']}/pause")
    monkeypatch.setattr(clock, "utc_now", lambda: MONDAY_9_TORONTO + timedelta(days=2, hours=1))
    api.post(f"/recurring/templates/{template['id']}/resume", json={"missed": "policy"})
    run(db, MONDAY_9_TORONTO + timedelta(days=2, hours=1))
    assert created(db, template["id"]) == [MONDAY_9_TORONTO + timedelta(days=d) for d in range(3)]


def test_skip_records_who_and_why_and_the_job_leaves_that_occurrence_out(api, db):
    template = api.post("/recurring/templates", json=body()).json()
    tuesday = "2026-03-03T09:00:00-05:00"
    answer = api.post(f"/recurring/templates/{template['id']}/skip", json={"occurrence": tuesday,
                                                                           "reason": "team offsite"})
    assert answer.status_code == 200, answer.text
    again = api.post(f"/recurring/templates/{template['id']}/skip", json={"occurrence": tuesday, "reason": "x"})
    assert again.status_code == 409
    off_schedule = api.post(f"/recurring/templates/{template['id']}/skip",
                            json={"occurrence": "2026-03-03T10:00:00-05:00", "reason": "x"})
    assert off_schedule.status_code == 422 and off_schedule.json()["detail"][0]["loc"] == ["body", "occurrence"]
    saturday = api.post(f"/recurring/templates/{template['id']}/skip",
                        json={"occurrence": "2026-03-07T09:00:00-05:00", "reason": "x"})
    assert saturday.status_code == 422
    assert api.post(f"/recurring/templates/{template['id']}/skip",
                    json={"occurrence": tuesday, "reason": " "}).status_code == 422
    preview = api.get(f"/recurring/templates/{template['id']}/preview", params={"count": 2}).json()
    assert [o["local"][:10] for o in preview["occurrences"]] == ["2026-03-02", "2026-03-04"]
    run(db, MONDAY_9_TORONTO + timedelta(days=2, minutes=5))  # latest_only: Tuesday is not "missed", it is gone
    assert created(db, template["id"]) == [MONDAY_9_TORONTO + timedelta(days=2)]
    skip = db.execute("SELECT kind, skipped_by, reason FROM recurring_occurrence_skips WHERE template_id = %s"
                      " AND occurrence_at = %s", (template["id"], MONDAY_9_TORONTO + timedelta(days=1))).fetchone()
    assert skip == ("skipped", "ana", "team offsite")
    created_already = api.post(f"/recurring/templates/{template['id']}/skip",
                               json={"occurrence": "2026-03-04T09:00:00-05:00", "reason": "late"})
    assert created_already.status_code == 409


def test_move_creates_the_occurrence_at_its_new_instant_once(api, db):
    template = api.post("/recurring/templates", json=body()).json()
    moved_to = MONDAY_9_TORONTO + timedelta(days=1, hours=6)  # Tuesday 15:00 instead of Tuesday 09:00
    answer = api.post(f"/recurring/templates/{template['id']}/move", json={
        "occurrence": "2026-03-03T14:00:00Z", "to": moved_to.isoformat(), "reason": "patch window"})
    assert answer.status_code == 200, answer.text
    for to, loc in ((NOW - timedelta(hours=1), "to"), (MONDAY_9_TORONTO + timedelta(days=2), "to")):
        refused = api.post(f"/recurring/templates/{template['id']}/move", json={
            "occurrence": "2026-03-05T14:00:00Z", "to": to.isoformat(), "reason": "x"})
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", loc]
    preview = api.get(f"/recurring/templates/{template['id']}/preview", params={"count": 3}).json()
    assert [o["utc"] for o in preview["occurrences"]] == ["2026-03-02T14:00:00Z", "2026-03-03T20:00:00Z",
                                                          "2026-03-04T14:00:00Z"]
    run(db, MONDAY_9_TORONTO + timedelta(days=1, hours=1), run_id="r1")
    assert created(db, template["id"]) == [MONDAY_9_TORONTO]
    run(db, moved_to + timedelta(minutes=5), run_id="r2")
    run(db, moved_to + timedelta(minutes=10), run_id="r3")
    subjects = [r[0] for r in db.execute("SELECT subject FROM tickets WHERE recurring_parent_id = %s"
                                         " ORDER BY id", (template["id"],))]
    assert subjects == ["Weekday standup notes (2026-03-02)", "Weekday standup notes (2026-03-03)"]
    history = api.get(f"/recurring/templates/{template['id']}/history").json()["entries"]
    assert [(e["kind"], e["occurrence"]) for e in history[:2]] == [
        ("created", "2026-03-03T20:00:00Z"), ("moved", "2026-03-03T14:00:00Z")]
    assert history[1]["ticket_id"] == history[0]["ticket_id"] is not None


def test_an_occurrence_moved_before_the_pointer_is_previewed_and_created(api, db, monkeypatch):
    """Tuesday's occurrence moved to Monday afternoon, after Monday's ticket moved the pointer to Tuesday."""
    template = api.post("/recurring/templates", json=body()).json()
    run(db, MONDAY_9_TORONTO + timedelta(minutes=5))
    monkeypatch.setattr(clock, "utc_now", lambda: MONDAY_9_TORONTO + timedelta(hours=1))
    monday_afternoon = MONDAY_9_TORONTO + timedelta(hours=6)
    moved = api.post(f"/recurring/templates/{template['id']}/move", json={
        "occurrence": "2026-03-03T14:00:00Z", "to": monday_afternoon.isoformat(), "reason": "earlier"})
    assert moved.status_code == 200, moved.text
    preview = api.get(f"/recurring/templates/{template['id']}/preview", params={"count": 2}).json()
    assert [o["utc"] for o in preview["occurrences"]] == ["2026-03-02T20:00:00Z", "2026-03-04T14:00:00Z"]
    run(db, monday_afternoon + timedelta(minutes=5), run_id="r2")
    assert created(db, template["id"]) == [MONDAY_9_TORONTO, MONDAY_9_TORONTO + timedelta(days=1)]


def test_reschedule_restarts_the_series_at_the_instant(api, db):
    template = api.post("/recurring/templates", json=body(schedule={"interval": "daily", "every": 1})).json()
    run(db, MONDAY_9_TORONTO + timedelta(minutes=5))
    answer = api.post(f"/recurring/templates/{template['id']}/reschedule",
                      json={"from": "2026-03-04T15:30:00-05:00", "reason": "new shift"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["next_occurrence"] == "2026-03-04T20:30:00Z"
    assert answer.json()["start"] == "2026-03-04T20:30:00Z"
    run(db, datetime(2026, 3, 5, 21, tzinfo=UTC), run_id="r2")
    assert created(db, template["id"]) == [MONDAY_9_TORONTO, datetime(2026, 3, 5, 20, 30, tzinfo=UTC)]
    for bad in ("not a time", 0):
        refused = api.post(f"/recurring/templates/{template['id']}/reschedule", json={"from": bad})
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "from"]


def test_preview_of_an_unsaved_schedule_writes_nothing_and_shows_both_zones(api, db):
    before = snapshot(db)
    answer = api.post("/recurring/preview", json={
        "schedule": {"interval": "weekly", "every": 2}, "timezone": "Europe/London",
        "start": "2026-03-23T09:00:00Z", "count": 3}, headers={"x-test-user": "viewer"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["occurrences"] == [
        {"local": "2026-03-23T09:00:00+00:00", "utc": "2026-03-23T09:00:00Z"},
        {"local": "2026-04-06T09:00:00+01:00", "utc": "2026-04-06T08:00:00Z"},
        {"local": "2026-04-20T09:00:00+01:00", "utc": "2026-04-20T08:00:00Z"}]
    assert snapshot(db) == before
    for change, loc in (({"count": 101}, ["body", "count"]), ({"timezone": "CEST"}, ["body", "timezone"]),
                        ({"schedule": {"rrule": "FREQ=DAILY;COUNT=0"}}, ["body", "schedule", "rrule"]),
                        ({"after": "2240-01-01T09:00:00Z"}, ["body", "after"])):
        refused = api.post("/recurring/preview", json={"schedule": {"interval": "daily"},
                                                       "start": "2026-03-23T09:00:00Z", **change})
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][:len(loc)] == loc, refused.text


def test_a_viewer_reads_but_every_change_is_a_403_that_changes_nothing(api, db):
    template = api.post("/recurring/templates", json=body()).json()
    viewer = {"x-test-user": "viewer"}
    assert api.get("/recurring/templates", headers=viewer).status_code == 200
    assert api.get(f"/recurring/templates/{template['id']}", headers=viewer).status_code == 200
    assert api.get(f"/recurring/templates/{template['id']}/history", headers=viewer).status_code == 200
    before = snapshot(db)
    changes = [("post", "/recurring/templates", body()),
               ("patch", f"/recurring/templates/{template['id']}", {"subject": "x"}),
               ("post", f"/recurring/templates/{template['id']}/pause", {}),
               ("post", f"/recurring/templates/{template['id']}/resume", {}),
               ("post", f"/recurring/templates/{template['id']}/skip",
                {"occurrence": "2026-03-03T14:00:00Z", "reason": "x"}),
               ("post", f"/recurring/templates/{template['id']}/move",
                {"occurrence": "2026-03-03T14:00:00Z", "to": "2026-03-03T20:00:00Z", "reason": "x"}),
               ("post", f"/recurring/templates/{template['id']}/reschedule", {"from": "2026-03-04T14:00:00Z"})]
    for method, path, payload in changes:
        assert api.request(method, path, json=payload, headers=viewer).status_code == 403, path
    assert snapshot(db) == before


def test_unknown_templates_are_404_and_paging_is_bounded(api):
    for path in ("/recurring/templates/404", "/recurring/templates/404/preview",
                 "/recurring/templates/404/history"):
        assert api.get(path).status_code == 404
    assert api.post("/recurring/templates/404/pause").status_code == 404
    assert api.get("/recurring/templates", params={"limit": 201}).status_code == 422
    assert api.get("/recurring/templates", params={"state": "sleeping"}).status_code == 422
    assert api.get("/recurring/templates/1/preview", params={"count": 101}).status_code == 422


def test_a_parked_template_shows_its_reason_and_an_edit_fixes_it(api, db):
    template = api.post("/recurring/templates", json=body(schedule={"rrule": "FREQ=DAILY"})).json()
    db.execute("UPDATE tickets SET recurrence_rule = 'FREQ=DAILY;COUNT=2;UNTIL=20270101' WHERE id = %s",
               (template["id"],))  # written by another application: the job parks it
    run(db, MONDAY_9_TORONTO + timedelta(minutes=5))
    parked = api.get("/recurring/templates", params={"state": "parked"}).json()["templates"]
    assert [t["id"] for t in parked] == [template["id"]] and "COUNT and UNTIL" in parked[0]["parked_reason"]
    fixed = api.patch(f"/recurring/templates/{template['id']}", json={"schedule": {"rrule": "FREQ=DAILY"}})
    assert fixed.json()["state"] == "active" and fixed.json()["parked_reason"] is None


def test_resume_with_skip_also_skips_a_move_whose_new_instant_passed_while_paused(api, db, monkeypatch):
    template = api.post("/recurring/templates", json=body()).json()
    moved = api.post(f"/recurring/templates/{template['id']}/move", json={
        "occurrence": "2026-03-03T14:00:00Z", "to": "2026-03-03T20:00:00Z", "reason": "afternoon this once"})
    assert moved.status_code == 200, moved.text
    api.post(f"/recurring/templates/{template['id']}/pause")
    monkeypatch.setattr(clock, "utc_now", lambda: MONDAY_9_TORONTO + timedelta(days=2, hours=1))  # Wednesday
    resumed = api.post(f"/recurring/templates/{template['id']}/resume", json={"missed": "skip"}).json()
    assert resumed["upcoming"] == "2026-03-05T14:00:00Z"
    run(db, MONDAY_9_TORONTO + timedelta(days=2, hours=1, minutes=5))
    assert created(db, template["id"]) == []
    skipped = db.execute("SELECT kind, moved_to, skipped_by FROM recurring_occurrence_skips WHERE template_id = %s"
                         " AND occurrence_at = %s", (template["id"], MONDAY_9_TORONTO + timedelta(days=1))
                         ).fetchone()
    assert skipped == ("skipped", None, "ana")


@pytest.mark.parametrize("path,payload", [
    ("", {"start": "1900-01-01T00:00:00+14:00"}),
    ("/{id}", {"start": "1900-01-01T00:00:00+14:00"}),
    ("/{id}", {"end": "8999-12-31T23:00:00-05:00"}),
    ("/{id}/reschedule", {"from": "8999-12-31T23:00:00-05:00"}),
    ("/{id}/move", {"occurrence": "2026-03-03T14:00:00Z", "to": "8999-12-31T23:00:00-05:00", "reason": "x"}),
])
def test_an_instant_its_offset_carries_past_the_columns_bounds_is_a_422_that_changes_nothing(api, db, path,
                                                                                               payload):
    template = api.post("/recurring/templates", json=body()).json()
    before = snapshot(db)
    url = "/recurring/templates" + path.format(id=template["id"])
    send = api.patch if path == "/{id}" else api.post
    answer = send(url, json=body(**payload) if path == "" else payload)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][-1] in ("start", "end", "from", "to")
    assert snapshot(db) == before


def test_a_start_edited_to_before_the_next_occurrence_restarts_the_series_there(api, db):
    template = api.post("/recurring/templates", json=body(schedule={"interval": "daily"},
                                                          start="2026-03-09T09:00:00-04:00")).json()
    edited = api.patch(f"/recurring/templates/{template['id']}", json={"start": "2026-03-02T09:00:00-05:00"}).json()
    assert (edited["start"], edited["upcoming"]) == ("2026-03-02T14:00:00Z", "2026-03-02T14:00:00Z")
    run(db, MONDAY_9_TORONTO + timedelta(days=1, minutes=5))
    assert created(db, template["id"]) == [MONDAY_9_TORONTO + timedelta(days=1)]  # latest_only: the newest


def test_reschedule_into_the_past_is_refused_so_nothing_is_created_twice(api, db):
    template = api.post("/recurring/templates", json=body(schedule={"interval": "daily"}, missed_policy="create_all",
                                                          start="2026-02-02T09:00:00-05:00")).json()
    run(db, NOW)
    made = created(db, template["id"])
    answer = api.post(f"/recurring/templates/{template['id']}/reschedule", json={"from": "2026-02-02T10:00:00-05:00"})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "from"]
    run(db, NOW, run_id="r2")
    assert created(db, template["id"]) == made and len(made) == 28

