-- One batch of TDX tickets whose action log may go, with that log, in ticket id
-- order after %(after_ticket_id)s. The log is what makes each action exactly once:
-- while a report lists the ticket, the next run reads the log to know what is
-- done, and without it would act again. So a ticket's log goes only when
--   * the last acting read that listed it (its sighting) is older than the cut-off;
--   * a read of that same report since then did not list it: the report's last
--     read is more than %(refresh)s after the sighting (sightings are refreshed
--     that often). For a ticket logged before sightings were recorded (no report
--     known), every report's last read must be; with no read recorded, nothing goes.
--     A queue that stopped running, or runs dry, records no read: nothing goes;
--   * none of its actions is pending (a run died between claiming and settling
--     it: the queue finishes those, listed or not).
-- Its sighting goes with it: a ticket that comes back to a report later is new to
-- the queue. Returns the tickets forgotten and how many log rows each had.
WITH doomed AS (
    SELECT s.ticket_id
    FROM meta.tdx_ticket_sightings s
    WHERE s.ticket_id > %(after_ticket_id)s
      AND s.last_seen_at < %(cutoff)s
      AND CASE WHEN s.report_id IS NULL
               THEN EXISTS (SELECT 1 FROM meta.tdx_report_reads)
                    AND s.last_seen_at + %(refresh)s::interval < ALL (SELECT last_read_at FROM meta.tdx_report_reads)
               ELSE s.last_seen_at + %(refresh)s::interval
                    < (SELECT r.last_read_at FROM meta.tdx_report_reads r WHERE r.report_id = s.report_id)
          END
      AND NOT EXISTS (SELECT 1 FROM meta.daemon_action_log l WHERE l.ticket_id = s.ticket_id AND l.status = 'pending')
    ORDER BY s.ticket_id
    LIMIT %(batch_size)s
    FOR UPDATE OF s SKIP LOCKED
),
log AS (
    DELETE FROM meta.daemon_action_log l
    USING doomed d
    WHERE l.ticket_id = d.ticket_id
    RETURNING l.ticket_id
),
forgotten AS (
    DELETE FROM meta.tdx_ticket_sightings s
    USING doomed d
    WHERE s.ticket_id = d.ticket_id
    RETURNING s.ticket_id
)
SELECT f.ticket_id, count(l.ticket_id) AS "meta.daemon_action_log"
FROM forgotten f
LEFT JOIN log l USING (ticket_id)
GROUP BY f.ticket_id
