-- One batch of alerts raised before the cut-off, in id order after %(after_id)s,
-- once nothing they listed is still open. An alert is what stops its condition
-- from alerting twice in a period, and only the current period's can; the items
-- an alert listed go with it (ON DELETE CASCADE) and would be alerted anew, so
-- an alert that still lists an open item stays (it says since when). Returns
-- the ids deleted.
WITH doomed AS (
    SELECT a.id
    FROM alerts a
    WHERE a.id > %(after_id)s
      AND a.raised_at < %(cutoff)s
      AND NOT EXISTS (SELECT 1 FROM alert_items i WHERE i.alert_id = a.id)
    ORDER BY a.id
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM alerts a
USING doomed d
WHERE a.id = d.id
RETURNING a.id
