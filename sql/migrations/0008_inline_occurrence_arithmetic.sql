-- The recurring job's occurrence arithmetic, twice as fast: a scalar SQL
-- function whose body has a FROM clause is never inlined, so every candidate
-- occurrence paid a function call for ticketflow_local_to_instant. Declared as a
-- set of one row and joined LATERAL, the planner inlines it into
-- ticketflow_interval_occurrences, and so into the batch statement. Same rules
-- and results as 0002 (see its comments); `SELECT ticketflow_local_to_instant(...)`
-- still returns the one instant.
-- depends: 0007_drop_redundant_unallocated_index

DROP FUNCTION ticketflow_local_to_instant(timestamp, text);

CREATE FUNCTION ticketflow_local_to_instant(wall timestamp, tz text) RETURNS SETOF timestamptz
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1 AS $$
    SELECT CASE
        WHEN offset_before = wall - (later AT TIME ZONE 'UTC') THEN later
        WHEN ((wall - offset_before) AT TIME ZONE 'UTC') AT TIME ZONE tz = wall
            THEN least((wall - offset_before) AT TIME ZONE 'UTC', later)
        ELSE later END
    FROM (SELECT wall AT TIME ZONE tz AS later) AS pg,
         LATERAL (SELECT ((later - interval '24 hours') AT TIME ZONE tz)
                         - ((later - interval '24 hours') AT TIME ZONE 'UTC') AS offset_before) AS o
$$;

CREATE OR REPLACE FUNCTION ticketflow_interval_occurrences(
    anchor timestamptz, tz text, unit text, every integer, from_at timestamptz, until_at timestamptz
) RETURNS TABLE (occurrence_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN k = 0 THEN anchor
                ELSE i.instant END
    FROM (
        SELECT w.anchor_wall,
               CASE unit WHEN 'monthly' THEN interval '1 month' WHEN 'weekly' THEN interval '7 days'
                         ELSE interval '1 day' END * every AS step,
               CASE unit WHEN 'monthly' THEN
                   ((extract(year FROM w.f) - extract(year FROM w.anchor_wall)) * 12
                    + extract(month FROM w.f) - extract(month FROM w.anchor_wall))::int / every
               ELSE (w.f::date - w.anchor_wall::date) / (CASE unit WHEN 'weekly' THEN 7 ELSE 1 END * every)
               END AS k_from,
               CASE unit WHEN 'monthly' THEN
                   ((extract(year FROM w.u) - extract(year FROM w.anchor_wall)) * 12
                    + extract(month FROM w.u) - extract(month FROM w.anchor_wall))::int / every
               ELSE (w.u::date - w.anchor_wall::date) / (CASE unit WHEN 'weekly' THEN 7 ELSE 1 END * every)
               END AS k_until
        FROM (SELECT anchor AT TIME ZONE tz AS anchor_wall, from_at AT TIME ZONE tz AS f,
                     until_at AT TIME ZONE tz AS u) AS w
    ) AS s,
    generate_series(greatest(0, s.k_from), greatest(0, s.k_until + 1)) AS k,
    LATERAL ticketflow_local_to_instant(s.anchor_wall + k * s.step, tz) AS i (instant)
$$;
