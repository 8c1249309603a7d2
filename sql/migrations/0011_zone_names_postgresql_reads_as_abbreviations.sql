-- CET, EET, MET and WET are IANA zones with summer time, but PostgreSQL's
-- AT TIME ZONE reads these four names as its fixed-offset abbreviations
-- (CET = UTC+1 all year), so an interval template in CET came an hour late all
-- summer while the same schedule as an RRULE (computed by Python) did not.
-- No other name in time_zones differs between the two readings (tested).
-- Templates that named them move to the zone tzdata itself now links them to.
-- Anchors are instants and keep their meaning: the series runs at the anchor's
-- local time in the real zone. An interval template's pointer was computed at
-- the fixed offset: it keeps its local wall time in the new zone, which is the
-- new series' occurrence for a winter anchor and no later than it otherwise,
-- so no occurrence is lost, and it stays the job's own. (RRULEs were computed
-- by Python, which always read these zones with summer time.) The names are
-- then refused. Refreshing time_zones after a PostgreSQL upgrade must leave
-- them out: see the README.
-- depends: 0010_pointer_written_by_the_job

UPDATE tickets t
SET recurrence_timezone = c.zone,
    next_occurrence = c.pointer,
    job_next_occurrence = c.pointer  -- 0010 has just counted every pointer as the job's
FROM (SELECT o.id, m.zone,
             CASE WHEN o.recurrence_rule IS NULL AND o.next_occurrence IS NOT NULL
                  THEN (SELECT ticketflow_local_to_instant(o.next_occurrence AT TIME ZONE m.name, m.zone))
                  ELSE o.next_occurrence END AS pointer
      FROM tickets o
      JOIN (VALUES ('CET', 'Europe/Brussels'), ('MET', 'Europe/Brussels'), ('EET', 'Europe/Athens'),
                   ('WET', 'Europe/Lisbon')) AS m (name, zone) ON o.recurrence_timezone = m.name) AS c
WHERE t.id = c.id;

DELETE FROM time_zones WHERE name IN ('CET', 'EET', 'MET', 'WET');
