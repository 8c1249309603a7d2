-- Recurring templates the job parked (recurrence_error says why): no ticket is
-- made from them until their schedule is edited, which clears the error.
-- "Parked" is recurring_template_states' (a paused template is paused, not
-- parked: a person stopped it on purpose).
SELECT 'template:' || t.id AS item_key, 'recurring_tickets' AS dag_id, t.updated_at AS since,
       'Template #' || t.id || ' "' || left(t.subject, 120) || '": ' || left(t.recurrence_error, 300) AS line
FROM recurring_template_states s
JOIN tickets t ON t.id = s.template_id
WHERE s.state = 'parked'
ORDER BY t.updated_at, t.id
