-- Per automation: its last run, and its runs and failures over the last 24
-- hours and 7 days. Automations are the known ones (in their order) and any
-- other DAG that wrote an audit row in the last 7 days.
WITH clock AS (SELECT %(now)s::timestamptz AS now),
automation AS (
    SELECT dag_id, position FROM unnest(%(known)s::text[]) WITH ORDINALITY AS k(dag_id, position)
    UNION ALL
    SELECT DISTINCT r.dag_id, 1000000 FROM automation_runs r, clock
    WHERE r.started_at > clock.now - interval '7 days' AND r.dag_id <> ALL (%(known)s::text[])
)
SELECT a.dag_id, last.run_id AS last_run_id, last.started_at AS last_started_at,
       last.status AS last_status, last.error AS last_error,
       coalesce(recent.runs_24h, 0) AS runs_24h, coalesce(recent.failures_24h, 0) AS failures_24h,
       coalesce(recent.runs_7d, 0) AS runs_7d, coalesce(recent.failures_7d, 0) AS failures_7d
FROM automation a
CROSS JOIN clock
LEFT JOIN LATERAL (
    SELECT r.run_id, r.started_at, r.status, r.error FROM automation_runs r
    WHERE r.dag_id = a.dag_id AND r.started_at <= clock.now
    ORDER BY r.started_at DESC LIMIT 1
) AS last ON true
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE r.started_at > clock.now - interval '24 hours') AS runs_24h,
           count(*) FILTER (WHERE r.started_at > clock.now - interval '24 hours' AND r.status = 'error')
               AS failures_24h,
           count(*) AS runs_7d,
           count(*) FILTER (WHERE r.status = 'error') AS failures_7d
    FROM automation_runs r
    WHERE r.dag_id = a.dag_id AND r.started_at > clock.now - interval '7 days' AND r.started_at <= clock.now
) AS recent ON true
ORDER BY a.position, a.dag_id
