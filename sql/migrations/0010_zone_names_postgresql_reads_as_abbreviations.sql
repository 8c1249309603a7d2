-- CET, EET, MET and WET are IANA zones with summer time, but PostgreSQL's
-- AT TIME ZONE reads these four names as its fixed-offset abbreviations
-- (CET = UTC+1 all year), so an interval template in CET came an hour late all
-- summer while the same schedule as an RRULE (computed by Python) did not.
-- No other name in time_zones differs between the two readings (tested).
-- Templates that named them move to the zone tzdata itself now links them to.
-- An interval template's anchor and pointer were read with the fixed offset:
-- they keep their local wall times in the new zone, so the pointer stays an
-- occurrence of the series and no occurrence is lost or moved. (RRULEs were
-- computed by Python, which always read these zones with summer time.) The
-- names are then refused. Refreshing time_zones after a PostgreSQL upgrade
-- must leave them out: see the README.
-- depends: 0009_event_reminder_per_start

UPDATE tickets t
SET recurrence_timezone = m.zone,
    recurrence_start = CASE WHEN t.recurrence_rule IS NULL AND t.recurrence_start IS NOT NULL
        THEN (SELECT ticketflow_local_to_instant(t.recurrence_start AT TIME ZONE m.name, m.zone))
        ELSE t.recurrence_start END,
    next_occurrence = CASE WHEN t.recurrence_rule IS NULL AND t.next_occurrence IS NOT NULL
        THEN (SELECT ticketflow_local_to_instant(t.next_occurrence AT TIME ZONE m.name, m.zone))
        ELSE t.next_occurrence END
FROM (VALUES ('CET', 'Europe/Brussels'), ('MET', 'Europe/Brussels'), ('EET', 'Europe/Athens'),
             ('WET', 'Europe/Lisbon')) AS m (name, zone)
WHERE t.recurrence_timezone = m.name;

DELETE FROM time_zones WHERE name IN ('CET', 'EET', 'MET', 'WET');
