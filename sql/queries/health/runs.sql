-- The latest runs of every automation over the last 7 days, oldest first:
-- the points of the dashboard's charts. Duration is NULL while a run is running.
SELECT dag_id, run_id, started_at, status, processed, changed, skipped,
       extract(epoch FROM finished_at - started_at)::double precision AS duration_seconds
FROM (
    SELECT r.*, row_number() OVER (PARTITION BY r.dag_id ORDER BY r.started_at DESC) AS latest
    FROM automation_runs r
    WHERE r.started_at > %(now)s::timestamptz - interval '7 days'
      AND r.started_at <= %(now)s::timestamptz
) AS r
WHERE latest <= %(per_automation)s
ORDER BY dag_id, started_at
