-- One batch of the audit of runs: rows of runs that started before the cut-off,
-- in id order after %(after_id)s (each batch starts where the last one stopped,
-- so no batch reads what an earlier one deleted). The latest run of every
-- automation stays however old, so the dashboard still says when it last ran.
-- SKIP LOCKED: a row a rerun is reopening right now is left for the next day,
-- never waited for. Returns the ids deleted.
WITH doomed AS (
    SELECT r.id
    FROM automation_runs r
    WHERE r.id > %(after_id)s
      AND r.started_at < %(cutoff)s
      AND EXISTS (SELECT 1 FROM automation_runs newer
                  WHERE newer.dag_id = r.dag_id AND newer.started_at > r.started_at)
    ORDER BY r.id
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM automation_runs r
USING doomed d
WHERE r.id = d.id
RETURNING r.id
