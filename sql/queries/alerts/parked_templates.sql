-- Recurring templates the job parked (recurrence_error says why): no ticket is
-- made from them until their schedule is edited, which clears the error.
SELECT 'template:' || t.id AS item_key, 'recurring_tickets' AS dag_id, t.updated_at AS since,
       'Template #' || t.id || ' "' || left(t.subject, 120) || '": ' || left(t.recurrence_error, 300) AS line
FROM tickets t
WHERE t.is_recurring AND t.recurrence_error IS NOT NULL AND NOT t.archived
ORDER BY t.updated_at, t.id
