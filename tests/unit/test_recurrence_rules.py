"""The RRULE engine: RFC 5545 wall-time rules, DST, month ends, and properties that must always hold."""

from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketflow.recurrence import RecurrenceError, RuleSchedule, local_to_instant
from ticketflow.recurring import rule_candidates

UTC = UTC
ZONES = ["America/Toronto", "Europe/London", "Australia/Sydney", "UTC"]


def _local(tz, *args):
    return local_to_instant(datetime(*args), ZoneInfo(tz))


def _first(schedule, n, start=None):
    return list(islice(schedule.occurrences_from(start or schedule.anchor), n))


def test_a_wall_time_in_the_spring_forward_gap_takes_the_offset_before_the_gap():
    # 02:30 does not exist in Toronto on 2026-03-08: it is read with EST (-5), i.e. 03:30 EDT.
    assert _local("America/Toronto", 2026, 3, 8, 2, 30) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_a_repeated_wall_time_on_fall_back_means_its_first_occurrence():
    # 01:30 happens twice in Toronto on 2026-11-01: the first one is EDT (-4).
    assert _local("America/Toronto", 2026, 11, 1, 1, 30) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_daily_at_nine_toronto_stays_at_nine_local_across_both_dst_changes():
    tz = ZoneInfo("America/Toronto")
    anchor = _local("America/Toronto", 2026, 3, 6, 9, 0)
    schedule = RuleSchedule.parse("FREQ=DAILY", anchor, "America/Toronto")
    spring = _first(schedule, 4)
    assert [o.astimezone(tz).strftime("%m-%d %H:%M %Z") for o in spring] == [
        "03-06 09:00 EST", "03-07 09:00 EST", "03-08 09:00 EDT", "03-09 09:00 EDT"]
    autumn = _first(schedule, 3, _local("America/Toronto", 2026, 10, 31, 0, 0))
    assert [o.astimezone(tz).strftime("%m-%d %H:%M %Z") for o in autumn] == [
        "10-31 09:00 EDT", "11-01 09:00 EST", "11-02 09:00 EST"]


def test_daily_at_two_thirty_fires_once_on_each_dst_day():
    anchor = _local("America/Toronto", 2026, 3, 7, 2, 30)
    schedule = RuleSchedule.parse("FREQ=DAILY", anchor, "America/Toronto")
    assert _first(schedule, 3) == [datetime(2026, 3, 7, 7, 30, tzinfo=UTC),
                                   datetime(2026, 3, 8, 7, 30, tzinfo=UTC),   # 03:30 EDT, the gap
                                   datetime(2026, 3, 9, 6, 30, tzinfo=UTC)]
    fall = RuleSchedule.parse("FREQ=DAILY", _local("America/Toronto", 2026, 10, 31, 1, 30), "America/Toronto")
    assert _first(fall, 3) == [datetime(2026, 10, 31, 5, 30, tzinfo=UTC),
                               datetime(2026, 11, 1, 5, 30, tzinfo=UTC),      # first 01:30, only once
                               datetime(2026, 11, 2, 6, 30, tzinfo=UTC)]


def test_last_day_of_every_month_including_leap_february():
    anchor = datetime(2028, 1, 31, 12, tzinfo=UTC)
    schedule = RuleSchedule.parse("FREQ=MONTHLY;BYMONTHDAY=-1", anchor, "UTC")
    assert [o.date().isoformat() for o in _first(schedule, 4)] == [
        "2028-01-31", "2028-02-29", "2028-03-31", "2028-04-30"]


def test_first_monday_of_the_month_and_weekday_lists():
    anchor = datetime(2026, 1, 5, 14, tzinfo=UTC)  # a Monday
    first_monday = RuleSchedule.parse("FREQ=MONTHLY;BYDAY=1MO", anchor, "UTC")
    assert [o.date().isoformat() for o in _first(first_monday, 3)] == ["2026-01-05", "2026-02-02", "2026-03-02"]
    mwf = RuleSchedule.parse("RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR", anchor, "UTC")
    assert [o.strftime("%a %d") for o in _first(mwf, 4)] == ["Mon 05", "Wed 07", "Fri 09", "Mon 12"]


def test_count_and_until_end_the_series():
    anchor = datetime(2026, 1, 1, 9, tzinfo=UTC)
    counted = RuleSchedule.parse("FREQ=DAILY;COUNT=3", anchor, "UTC")
    assert len(list(counted.occurrences_from(anchor))) == 3
    until_utc = RuleSchedule.parse("FREQ=DAILY;UNTIL=20260103T090000Z", anchor, "UTC")
    assert len(list(until_utc.occurrences_from(anchor))) == 3
    until_date = RuleSchedule.parse("FREQ=DAILY;UNTIL=20260103", anchor, "UTC")
    assert len(list(until_date.occurrences_from(anchor))) == 3


def test_until_in_utc_is_compared_as_an_instant_in_the_local_zone():
    anchor = _local("America/Toronto", 2026, 1, 1, 21, 0)  # 02:00Z the next day
    schedule = RuleSchedule.parse("FREQ=DAILY;UNTIL=20260103T020000Z", anchor, "America/Toronto")
    assert [o.isoformat() for o in schedule.occurrences_from(anchor)] == [
        "2026-01-02T02:00:00+00:00", "2026-01-03T02:00:00+00:00"]


@pytest.mark.parametrize("until, fires_on_the_dst_day", [
    # Falls back on Nov 1: 01:45 EDT is 05:45Z, before UNTIL (06:30Z), so it fires.
    ("20261101T063000Z", True),
    # Springs forward on Mar 8: 02:30 does not exist and is 03:30 EDT = 07:30Z, after UNTIL (07:10Z).
    ("20260308T071000Z", False),
])
def test_until_in_utc_is_compared_as_an_instant_on_dst_days(until, fires_on_the_dst_day):
    first = datetime.strptime(until[:8], "%Y%m%d") - timedelta(days=2)
    wall = (1, 45) if first.month == 10 else (2, 30)
    anchor = _local("America/Toronto", first.year, first.month, first.day, *wall)
    schedule = RuleSchedule.parse(f"FREQ=DAILY;UNTIL={until}", anchor, "America/Toronto")
    occurrences = list(schedule.occurrences_from(anchor))
    assert len(occurrences) == (3 if fires_on_the_dst_day else 2)
    assert all(o <= datetime.strptime(until, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) for o in occurrences)


def test_counts_may_have_leading_zeros_as_rfc_5545_digits_do():
    anchor = datetime(2026, 1, 1, 9, tzinfo=UTC)
    schedule = RuleSchedule.parse("FREQ=DAILY;INTERVAL=02;COUNT=03", anchor, "UTC")
    assert [o.day for o in schedule.occurrences_from(anchor)] == [1, 3, 5]


def test_an_anchor_with_fractions_of_a_second_is_its_own_first_occurrence():
    anchor = datetime(2026, 3, 2, 9, 0, 0, 500000, tzinfo=UTC)  # recurrence_start = now(), say
    schedule = RuleSchedule.parse("FREQ=DAILY;COUNT=2", anchor, "UTC")
    assert list(schedule.occurrences_from(anchor)) == [anchor, anchor + timedelta(days=1)]


def test_rule_candidates_run_from_the_pointer_to_the_first_after_the_horizon():
    """The job's SQL picks the due ones and the next pointer from these: the last one is after the horizon."""
    anchor = datetime(2026, 1, 1, 9, tzinfo=UTC)
    found = rule_candidates("FREQ=DAILY", anchor, "UTC", datetime(2026, 1, 3, 9, tzinfo=UTC),
                            datetime(2026, 1, 5, 9, tzinfo=UTC))
    assert [o.day for o in found] == [3, 4, 5, 6]
    ended = rule_candidates("FREQ=DAILY;COUNT=4", anchor, "UTC", datetime(2026, 1, 3, 9, tzinfo=UTC),
                            datetime(2026, 1, 5, 9, tzinfo=UTC))
    assert [o.day for o in ended] == [3, 4]


@pytest.mark.parametrize("rule, message", [
    ("FREQ=FORTNIGHTLY", "FORTNIGHTLY is not supported"),
    ("FREQ=WEEKLY;BYDAY=XX", "unparseable RRULE"),
    ("FREQ=HOURLY", "not supported"),
    ("FREQ=MINUTELY;INTERVAL=5", "not supported"),
    ("DTSTART:20260101T000000\nRRULE:FREQ=DAILY", "single rule"),
    ("FREQ=DAILY;DTSTART=20260101", "DTSTART"),
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "no occurrence"),
    ("", "single rule"),
    ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be 1 or more"),
    ("FREQ=DAILY;INTERVAL=+0", "INTERVAL must be 1 or more"),  # dateutil reads it as 0 and never ends
    ("FREQ=DAILY;INTERVAL=1;INTERVAL=0", "names INTERVAL twice"),
    ("FREQ=DAILY;FREQ=MINUTELY", "names FREQ twice"),  # dateutil keeps the last: sub-daily
    ("FREQ=DAILY;COUNT=0", "COUNT must be 1 or more"),
    ("FREQ=DAILY;COUNT=00", "COUNT must be 1 or more"),
    ("FREQ=DAILY;COUNT=2;UNTIL=20260301", "both COUNT and UNTIL"),
    ("FREQ=DAILY;UNTIL=20261340", "not a valid date"),
    ("FREQ=DAILY;UNTIL=tomorrow", "UNTIL must be a date"),
    ("BYDAY=MO", "must name its FREQ"),
    ("FREQ=DAILY;BYEASTER=0", "unknown rule part BYEASTER"),
    ("FREQ=DAILY;;BYDAY=MO", "is not NAME=VALUE"),
    ("FREQ=DAILY;BYHOUR=1,2", "time of day is the anchor's"),
    ("FREQ=WEEKLY;BYMINUTE=0,30", "time of day is the anchor's"),
])
def test_bad_rules_are_refused_with_a_reason(rule, message):
    with pytest.raises(RecurrenceError, match=message):
        RuleSchedule.parse(rule, datetime(2026, 1, 1, tzinfo=UTC), "UTC")


def test_an_absurd_number_of_rule_occurrences_is_cut_short_not_computed():
    """Past the cap the candidates stop, one beyond it, so the job's SQL sees too many and parks the template."""
    anchor = datetime(1990, 1, 1, tzinfo=UTC)
    found = rule_candidates("FREQ=DAILY", anchor, "UTC", anchor, datetime(2026, 1, 1, tzinfo=UTC))
    assert len(found) == 10_001 and found[-1] < datetime(2026, 1, 1, tzinfo=UTC)


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(RecurrenceError, match="unknown time zone 'Mars/Olympus'"):
        RuleSchedule.parse("FREQ=DAILY", datetime(2026, 1, 1, tzinfo=UTC), "Mars/Olympus")


rules = st.sampled_from(["FREQ=DAILY", "FREQ=DAILY;INTERVAL=3", "FREQ=WEEKLY;BYDAY=MO,TH", "FREQ=MONTHLY",
                         "FREQ=MONTHLY;BYMONTHDAY=-1", "FREQ=MONTHLY;BYDAY=-1FR", "FREQ=YEARLY"])
anchors = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31))


@settings(max_examples=150, deadline=None)
@given(rule=rules, tz=st.sampled_from(ZONES), wall=anchors)
def test_occurrences_strictly_increase_and_keep_the_anchors_local_time(rule, tz, wall):
    zone = ZoneInfo(tz)
    anchor = local_to_instant(wall.replace(second=0, microsecond=0), zone)
    schedule = RuleSchedule.parse(rule, anchor, tz)
    occurrences = _first(schedule, 40)
    assert occurrences == sorted(set(occurrences))
    assert all(o >= anchor for o in occurrences)
    anchor_clock = anchor.astimezone(zone).time()
    for occurrence in occurrences:
        local = occurrence.astimezone(zone)
        if local.time() != anchor_clock:  # only a wall time that fell in a DST gap may move, forward
            gap_wall = datetime.combine(local.date(), anchor_clock)
            assert local_to_instant(gap_wall, zone) == occurrence
            assert local.replace(tzinfo=None) > gap_wall


@settings(max_examples=100, deadline=None)
@given(tz=st.sampled_from(ZONES), wall=anchors, hour=st.integers(0, 23), minute=st.sampled_from([0, 15, 30, 45]))
def test_daily_rules_hit_every_local_day_exactly_once_across_dst(tz, wall, hour, minute):
    zone = ZoneInfo(tz)
    anchor = local_to_instant(wall.replace(hour=hour, minute=minute, second=0, microsecond=0), zone)
    occurrences = _first(RuleSchedule.parse("FREQ=DAILY", anchor, tz), 400)
    days = [o.astimezone(zone).date() for o in occurrences]
    first = anchor.astimezone(zone).date()
    assert days == [first + timedelta(days=i) for i in range(400)]


@settings(max_examples=100, deadline=None)
@given(tz=st.sampled_from(ZONES), wall=anchors, start_offset=st.integers(0, 2000))
def test_resuming_from_any_pointer_gives_the_same_series(tz, wall, start_offset):
    """Computed from the anchor, never from the previous result: where a run resumes changes nothing."""
    zone = ZoneInfo(tz)
    anchor = local_to_instant(wall.replace(second=0, microsecond=0), zone)
    schedule = RuleSchedule.parse("FREQ=WEEKLY;BYDAY=MO,WE,FR", anchor, tz)
    full = _first(schedule, 60)
    pointer = anchor + timedelta(hours=start_offset)
    resumed = _first(schedule, 10, pointer)
    expected = [o for o in full if o >= pointer][:10]
    assert resumed == expected[: len(resumed)] and len(resumed) == 10
