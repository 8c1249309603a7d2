-- Every text column that input reaches gets a length bound, so no writer (the
-- API, intake, SQL typed by hand) can store a megabyte where a name belongs.
-- The bounds are ticketflow.limits.COLUMN_LENGTHS; each is a CHECK named
-- <table>_<column>_length, in characters. A recurring template's subject
-- leaves room for the " (YYYY-MM-DD)" its tickets add (limits.TEMPLATE_SUBJECT):
-- otherwise the recurring job could not create them.
--
-- Rows already longer are never cut: the migration then fails, changes
-- nothing, and its error lists every column with the ids of its offending
-- rows (the first 20). Shorten those rows (or set the field NULL where it may
-- be) and migrate again. A constraint added NOT VALID instead would leave the
-- old rows in place, and the next UPDATE of such a row (the recurring job
-- advancing a template, a task's ticket being allocated) would fail there.
-- depends: 0011_zone_names_postgresql_reads_as_abbreviations

-- Adds the bound (on the rows `applies_to` selects, if given) when no row exceeds
-- it; otherwise adds nothing and says which rows do.
CREATE FUNCTION ticketflow_add_length_bound(tbl regclass, col name, max_chars integer,
                                            applies_to text DEFAULT NULL, bound name DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    longer text;
BEGIN
    EXECUTE format('SELECT string_agg(id::text, '', '' ORDER BY id) FROM'
                   ' (SELECT id FROM %s WHERE (%s) AND char_length(%I) > %s ORDER BY id LIMIT 20) AS t',
                   tbl, coalesce(applies_to, 'true'), col, max_chars) INTO longer;
    IF longer IS NOT NULL THEN
        RETURN format('%s.%s is longer than %s characters in rows with id %s', tbl, col, max_chars, longer)
               || CASE WHEN applies_to IS NULL THEN '' ELSE format(' (%s)', applies_to) END;
    END IF;
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%s char_length(%I) <= %s)',
                   tbl, coalesce(bound, tbl::text || '_' || col || '_length'),
                   CASE WHEN applies_to IS NULL THEN '' ELSE format('NOT (%s) OR', applies_to) END, col, max_chars);
    RETURN NULL;
END
$$;

DO $$
DECLARE
    problems text;
BEGIN
    SELECT string_agg(problem, E'\n' ORDER BY n) INTO problems
    FROM unnest(ARRAY[
        ticketflow_add_length_bound('tickets', 'subject', 500),
        ticketflow_add_length_bound('tickets', 'subject', 487, 'is_recurring', 'tickets_template_subject_length'),
        ticketflow_add_length_bound('tickets', 'description', 100000),
        ticketflow_add_length_bound('tickets', 'external_id', 255),
        ticketflow_add_length_bound('tickets', 'department', 200),
        ticketflow_add_length_bound('tickets', 'category', 200),
        ticketflow_add_length_bound('tickets', 'sub_category', 200),
        ticketflow_add_length_bound('tickets', 'priority', 20),
        ticketflow_add_length_bound('tickets', 'status', 50),
        ticketflow_add_length_bound('tickets', 'requester_email', 254),
        ticketflow_add_length_bound('tickets', 'recurrence_rule', 2000),
        ticketflow_add_length_bound('workflows', 'name', 200),
        ticketflow_add_length_bound('workflows', 'department', 200),
        ticketflow_add_length_bound('workflows', 'category', 200),
        ticketflow_add_length_bound('workflows', 'sub_category', 200),
        ticketflow_add_length_bound('steps', 'name', 200),
        ticketflow_add_length_bound('steps', 'role_name', 200),
        ticketflow_add_length_bound('events', 'title', 200),
        ticketflow_add_length_bound('customers', 'username', 150),
        ticketflow_add_length_bound('customers', 'first_name', 150),
        ticketflow_add_length_bound('customers', 'last_name', 150),
        ticketflow_add_length_bound('customers', 'email', 254),
        ticketflow_add_length_bound('email_outbox', 'recipient', 254)
    ]) WITH ORDINALITY AS checked(problem, n);
    IF problems IS NOT NULL THEN
        RAISE EXCEPTION 'rows are longer than the new length limits allow; nothing was changed'
            USING DETAIL = problems,
                  HINT = 'Shorten these rows, then migrate again. Ticketflow never cuts stored text itself.';
    END IF;
END
$$;

DROP FUNCTION ticketflow_add_length_bound(regclass, name, integer, text, name);
