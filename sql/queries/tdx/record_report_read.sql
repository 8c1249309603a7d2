-- An acting run read a report: remember the read, and that each of its tickets
-- was in it, so retention knows which tickets' action logs are still needed.
-- Instants are the runs' due instants; an older run (a backfill) moves nothing
-- back. A ticket's sighting is refreshed at most once per %(refresh)s, so a
-- large report does not rewrite every row every five minutes: a read more than
-- %(refresh)s after a ticket's last sighting did not list it.
WITH report_read AS (
    INSERT INTO meta.tdx_report_reads AS r (report_id, last_read_at)
    VALUES (%(report_id)s, %(read_at)s)
    ON CONFLICT (report_id) DO UPDATE SET last_read_at = EXCLUDED.last_read_at
    WHERE r.last_read_at < EXCLUDED.last_read_at
)
INSERT INTO meta.tdx_ticket_sightings AS s (ticket_id, report_id, last_seen_at)
SELECT ticket_id, %(report_id)s, %(read_at)s
FROM unnest(%(ticket_ids)s::integer[]) AS ticket_id
ORDER BY ticket_id  -- rows locked in one order: two runs never deadlock
ON CONFLICT (ticket_id) DO UPDATE SET report_id = EXCLUDED.report_id, last_seen_at = EXCLUDED.last_seen_at
WHERE s.last_seen_at < EXCLUDED.last_seen_at - %(refresh)s::interval
   OR (s.report_id IS NULL AND s.last_seen_at < EXCLUDED.last_seen_at)
