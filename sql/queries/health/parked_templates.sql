-- Parked recurring templates for the dashboard: how many there are, and why.
-- One row per reason (the most common first): how many templates it parked,
-- the ids of the longest parked few, and how long the oldest has waited as
-- of %(now)s. Every row carries the totals, so the tile needs this one read.
-- Parked is the state recurring_template_states gives (the job could not
-- schedule the template; recurrence_error says why; a paused one is paused).
WITH parked AS (
    SELECT t.id, t.recurrence_error AS reason, t.updated_at
    FROM recurring_template_states s
    JOIN tickets t ON t.id = s.template_id
    WHERE s.state = 'parked'
), reasons AS (
    SELECT reason, count(*) AS templates,
           (array_agg(id ORDER BY updated_at, id))[1:%(ids_per_reason)s] AS template_ids,
           min(updated_at) AS parked_since
    FROM parked
    GROUP BY reason
)
SELECT left(reason, 300) AS reason, templates, template_ids,
       greatest(extract(epoch FROM %(now)s::timestamptz - parked_since), 0)::double precision AS waiting_seconds,
       sum(templates) OVER ()::bigint AS total_templates, count(*) OVER () AS total_reasons
FROM reasons
ORDER BY templates DESC, parked_since, reason
LIMIT %(reasons)s
