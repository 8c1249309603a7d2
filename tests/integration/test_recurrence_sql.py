"""The interval recurrence engine in PostgreSQL, checked against the RFC reading and an independent model."""

from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import local_to_instant

UTC = UTC
ZONES = ["America/Toronto", "Europe/London", "Australia/Sydney", "UTC", "Australia/Lord_Howe"]
STEPS = {"daily": lambda k: relativedelta(days=k), "weekly": lambda k: relativedelta(weeks=k),
         "monthly": lambda k: relativedelta(months=k)}
DB_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _sql_instant(db, wall, tz):
    return db.execute("SELECT ticketflow_local_to_instant(%s::timestamp, %s)", (wall, tz)).fetchone()[0]


def _sql_occurrences(db, anchor, tz, unit, every, from_at, until_at):
    """The occurrences in [from_at, until_at] and the first after, as the recurring job reads them."""
    rows = [r[0] for r in db.execute(
        "SELECT occurrence_at FROM ticketflow_interval_occurrences(%s, %s, %s, %s, %s, %s) ORDER BY 1",
        (anchor, tz, unit, every, from_at, until_at)).fetchall()]
    after = [o for o in rows if o > until_at]
    assert after, "the first occurrence after the window is always among the candidates"
    return [o for o in rows if from_at <= o <= until_at] + after[:1]


def _model_occurrences(anchor, tz, unit, every, from_at, until_at):
    """Reference: the k-th occurrence is the anchor's wall time plus k steps, read as RFC 5545 says."""
    zone = ZoneInfo(tz)
    anchor_wall = anchor.astimezone(zone).replace(tzinfo=None)
    found, k = [], 0
    while True:
        instant = anchor if k == 0 else local_to_instant(anchor_wall + STEPS[unit](k * every), zone)
        if instant > until_at:
            return found + [instant]
        if instant >= from_at:
            found.append(instant)
        k += 1


@pytest.mark.parametrize("tz, wall, expected", [
    ("America/Toronto", datetime(2026, 3, 8, 2, 30), datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),
    ("America/Toronto", datetime(2026, 11, 1, 1, 30), datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
    ("Europe/London", datetime(2026, 3, 29, 1, 30), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
    ("Europe/London", datetime(2026, 10, 25, 1, 30), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ("Australia/Sydney", datetime(2026, 10, 4, 2, 30), datetime(2026, 10, 3, 16, 30, tzinfo=UTC)),
    ("Australia/Sydney", datetime(2026, 4, 5, 2, 30), datetime(2026, 4, 4, 15, 30, tzinfo=UTC)),
])
def test_dst_gaps_and_folds_are_read_as_rfc_5545_says(db, tz, wall, expected):
    assert _sql_instant(db, wall, tz) == expected == local_to_instant(wall, ZoneInfo(tz))


@DB_SETTINGS
@given(tz=st.sampled_from(ZONES),
       wall=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31)).map(
           lambda d: d.replace(second=0, microsecond=0)))
def test_sql_and_python_read_every_wall_time_alike(db, tz, wall):
    assert _sql_instant(db, wall, tz) == local_to_instant(wall, ZoneInfo(tz))


@DB_SETTINGS
@given(tz=st.sampled_from(ZONES), unit=st.sampled_from(sorted(STEPS)), every=st.integers(1, 4),
       anchor_wall=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2029, 12, 31)).map(
           lambda d: d.replace(second=0, microsecond=0)),
       start_days=st.integers(0, 900), span_hours=st.integers(0, 24 * 70))
def test_interval_occurrences_match_the_model_in_any_window(db, tz, unit, every, anchor_wall, start_days, span_hours):
    anchor = local_to_instant(anchor_wall, ZoneInfo(tz))
    from_at = anchor + timedelta(days=start_days)
    until_at = from_at + timedelta(hours=span_hours)
    got = _sql_occurrences(db, anchor, tz, unit, every, from_at, until_at)
    assert got == _model_occurrences(anchor, tz, unit, every, from_at, until_at)
    assert got == sorted(set(got)), "strictly increasing, no repeats"
    assert got[-1] > until_at and all(from_at <= o <= until_at for o in got[:-1])


def test_the_anchor_is_the_first_occurrence_even_as_the_second_reading_of_a_repeated_time(db):
    anchor = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST, the second 01:30 in Toronto that night
    got = _sql_occurrences(db, anchor, "America/Toronto", "daily", 1, anchor, anchor + timedelta(days=1))
    assert got[0] == anchor
    assert got[1] == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)


def test_monthly_on_the_31st_clamps_to_month_end_and_comes_back(db):
    anchor = datetime(2028, 1, 31, 9, tzinfo=UTC)
    got = _sql_occurrences(db, anchor, "UTC", "monthly", 1, anchor, datetime(2028, 5, 1, tzinfo=UTC))
    assert [o.date().isoformat() for o in got] == [
        "2028-01-31", "2028-02-29", "2028-03-31", "2028-04-30", "2028-05-31"]
    non_leap = _sql_occurrences(db, datetime(2027, 1, 31, 9, tzinfo=UTC), "UTC", "monthly", 1,
                                datetime(2027, 2, 1, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC))
    assert [o.date().isoformat() for o in non_leap] == ["2027-02-28", "2027-03-31"]


def test_daily_nine_o_clock_toronto_across_both_dst_changes(db):
    anchor = datetime(2026, 3, 6, 14, tzinfo=UTC)  # 09:00 EST
    spring = _sql_occurrences(db, anchor, "America/Toronto", "daily", 1, anchor, anchor + timedelta(days=3))
    assert [(o.day, o.hour) for o in spring] == [(6, 14), (7, 14), (8, 13), (9, 13), (10, 13)]
    autumn_from = datetime(2026, 10, 31, tzinfo=UTC)
    autumn = _sql_occurrences(db, anchor, "America/Toronto", "daily", 1, autumn_from,
                              autumn_from + timedelta(days=2))
    assert [(o.day, o.hour) for o in autumn] == [(31, 13), (1, 14), (2, 14)]


def test_unknown_time_zones_are_refused_by_the_database(db):
    import psycopg

    insert = ("INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
              " next_occurrence, recurrence_timezone) VALUES ('s', 'IT', 'HW', true, 'daily', now(), %s)")
    for name in ("Mars/Base", "UTC+3", "CEST", "america/toronto", "posix/America/Toronto"):
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="tickets_recurrence_timezone_known"):
            db.execute(insert, (name,))
    for name in ("America/Toronto", "Australia/Lord_Howe", "UTC", "Etc/GMT+3"):
        db.execute(insert, (name,))


def _transitions(tz, year=2026):
    """The instants in `year` where `tz` changes its UTC offset."""
    zone, found = ZoneInfo(tz), []
    hour = datetime(year, 1, 1, tzinfo=UTC)
    while hour.year == year:
        if (hour + timedelta(hours=1)).astimezone(zone).utcoffset() != hour.astimezone(zone).utcoffset():
            found.append(hour + timedelta(hours=1))
        hour += timedelta(hours=1)
    return found


@pytest.mark.parametrize("tz", [z for z in ZONES if z != "UTC"])
def test_every_half_hour_anchor_across_each_transition_matches_the_model(db, tz):
    """Daily series at every wall time of the day, windows sliding over each transition: none lost or doubled."""
    zone = ZoneInfo(tz)
    for transition in _transitions(tz):
        day = transition.astimezone(zone).replace(hour=0, minute=0, tzinfo=None)
        for slot in range(48):
            anchor = local_to_instant(day - timedelta(days=3) + timedelta(minutes=30 * slot), zone)
            for shift in range(0, 48 * 60, 170):
                from_at = local_to_instant(day, zone) + timedelta(minutes=shift - 12 * 60)
                until_at = from_at + timedelta(hours=13)
                assert (_sql_occurrences(db, anchor, tz, "daily", 1, from_at, until_at)
                        == _model_occurrences(anchor, tz, "daily", 1, from_at, until_at)), (anchor, from_at)


RULES = ["FREQ=DAILY", "FREQ=WEEKLY;BYDAY=MO,TH", "FREQ=MONTHLY;BYMONTHDAY=-1", "FREQ=MONTHLY;BYDAY=-1SU",
         "FREQ=DAILY;UNTIL=20281105T013000", "FREQ=DAILY;UNTIL=20280312", "FREQ=YEARLY;BYMONTH=3;BYDAY=2SU"]


@DB_SETTINGS
@given(tz=st.sampled_from(ZONES), rule=st.sampled_from(RULES),
       anchor_wall=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 6, 30)).map(
           lambda d: d.replace(second=0, microsecond=0)))
def test_rrule_occurrences_read_by_postgresql_match_the_model(db, tz, rule, anchor_wall):
    """RRULE wall times are read by the SQL function the interval arithmetic uses: the same answers as the
    model of RFC 5545's reading, across every DST change of the span."""
    from tests.support import model_wall_reader
    from ticketflow.recurrence import RuleSchedule, sql_wall_reader

    anchor = local_to_instant(anchor_wall, ZoneInfo(tz))
    schedule = RuleSchedule.parse(rule, anchor, tz)
    by_sql = list(islice(schedule.occurrences_from(anchor, sql_wall_reader(db)), 120))
    assert by_sql == list(islice(schedule.occurrences_from(anchor, model_wall_reader), 120))
