-- CET, EET, MET and WET are IANA zones with summer time, but PostgreSQL's
-- AT TIME ZONE reads these four names as its fixed-offset abbreviations
-- (CET = UTC+1 all year), so an interval template in CET came an hour late all
-- summer while the same schedule as an RRULE (computed by Python) did not.
-- No other name in time_zones differs between the two readings (tested).
-- Templates that named them move to the zone tzdata itself now links them to,
-- which keeps what their owners meant; the names are then refused.
-- depends: 0010_event_reminder_per_start

UPDATE tickets
SET recurrence_timezone = CASE recurrence_timezone WHEN 'CET' THEN 'Europe/Brussels' WHEN 'MET' THEN 'Europe/Brussels'
                                                   WHEN 'EET' THEN 'Europe/Athens' WHEN 'WET' THEN 'Europe/Lisbon' END
WHERE recurrence_timezone IN ('CET', 'EET', 'MET', 'WET');

DELETE FROM time_zones WHERE name IN ('CET', 'EET', 'MET', 'WET');
