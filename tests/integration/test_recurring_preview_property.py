"""What the preview promises is what the job creates: for random schedules in several zones, over a year of runs.

The preview (`template_occurrences`, behind the API's preview and a template's
next occurrences) and the job (`create_due_occurrences`, each run given its
due instant) share the schedule arithmetic; this holds them to one answer,
through DST changes, month ends, lead times, irregular gaps between runs and a
skipped occurrence.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketflow.audit import AuditedRun, RunWindow
from ticketflow.recurrence import local_to_instant
from ticketflow.recurring import create_due_occurrences
from ticketflow.recurring_templates import create_template, skip_occurrence, template_occurrences

ZONES = ["America/Toronto", "Europe/London", "Australia/Sydney", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
RULES = ["FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "FREQ=MONTHLY;BYMONTHDAY=-1", "FREQ=MONTHLY;BYDAY=1MO",
         "FREQ=MONTHLY;BYMONTHDAY=31", "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "FREQ=DAILY;INTERVAL=3",
         "FREQ=WEEKLY;INTERVAL=2;BYDAY=SA,SU", "FREQ=DAILY;COUNT=40"]
YEAR = timedelta(days=366)

schedules = st.one_of(
    st.builds(lambda unit, every: {"interval": unit, "every": every},
              st.sampled_from(["daily", "weekly", "monthly"]), st.integers(1, 3)),
    st.builds(lambda rule: {"rrule": rule}, st.sampled_from(RULES)))


def run(db, due, number):
    with AuditedRun(db, RunWindow("recurring_tickets", f"property__{number}", due)) as audited:
        create_due_occurrences(audited, "UTC")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=schedules, tz=st.sampled_from(ZONES),
       anchor_wall=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)).map(
           lambda d: d.replace(second=0, microsecond=0)),
       lead_hours=st.sampled_from([0, 0, 2, 30]),
       gaps=st.lists(st.integers(12, 24 * 30), min_size=1, max_size=50),
       skip_index=st.none() | st.integers(0, 20))
def test_the_preview_is_what_a_year_of_runs_creates(db, schedule, tz, anchor_wall, lead_hours, gaps, skip_index):
    db.execute("TRUNCATE tickets, recurring_occurrence_skips, automation_runs RESTART IDENTITY CASCADE")
    start = local_to_instant(anchor_wall, ZoneInfo(tz))
    template = create_template(db, {"subject": "Property", "department": "IT", "category": "Ops",
                                    "schedule": schedule, "timezone": tz, "start": start,
                                    "lead_time_seconds": lead_hours * 3600, "missed_policy": "create_all"}, "UTC")
    if skip_index is not None:
        upcoming = template_occurrences(db, template["id"], "UTC", skip_index + 1)
        if len(upcoming) > skip_index:
            skip_occurrence(db, template["id"], upcoming[skip_index], "property test", "hypothesis", "UTC")
    promised = template_occurrences(db, template["id"], "UTC", 400)

    due, number = start - timedelta(days=1), 0
    while due <= start + YEAR:  # runs at irregular instants, as outages and backfills leave them, for a year
        run(db, due, number)
        due, number = due + timedelta(hours=gaps[number % len(gaps)]), number + 1
    run(db, due, number)

    horizon = due + timedelta(hours=lead_hours)
    created = [row[0] for row in db.execute(
        "SELECT occurrence_at FROM tickets WHERE recurring_parent_id = %s ORDER BY occurrence_at",
        (template["id"],))]
    assert created == [o for o in promised if o <= horizon]
    assert len(promised) < 400 or promised[-1] > horizon, "the preview reached past the year"
