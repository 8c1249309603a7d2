-- Task tries that failed for good, as the failure notifier recorded them, in
-- the 24 hours up to the instant. Open for a day: a failure has no state to
-- clear, later runs of its DAG show whether it recovered.
SELECT item_key, dag_id, since, line
FROM alert_items
WHERE condition = %(condition)s
  AND observed_at > %(due_at)s::timestamptz - interval '24 hours'
  AND observed_at <= %(due_at)s::timestamptz
ORDER BY since, item_key
