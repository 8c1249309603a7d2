-- Reservations and events: status rules, attendees, the discoverable view, and
-- the email outbox that PostgreSQL itself fills when a status changes.
-- depends: 0002_recurring_tickets

-- Reservation status workflow: pending -> confirmed -> completed,
-- pending/confirmed -> cancelled. Anything else is refused, whoever writes.
CREATE FUNCTION ticketflow_reservation_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND (OLD.status, NEW.status) NOT IN (
        ('pending', 'confirmed'), ('pending', 'cancelled'),
        ('confirmed', 'completed'), ('confirmed', 'cancelled')) THEN
        RAISE EXCEPTION 'reservation % cannot go from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER reservations_status_transition
    BEFORE UPDATE OF status ON reservations
    FOR EACH ROW EXECUTE FUNCTION ticketflow_reservation_transition();

CREATE TABLE event_attendees (
    event_id    bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    customer_id bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    PRIMARY KEY (event_id, customer_id)
);

-- What the public listing shows; lookup by id reads events itself.
CREATE VIEW events_discoverable AS
SELECT * FROM events WHERE status NOT IN ('completed', 'cancelled', 'archived');

-- The lifecycle jobs read events by start (to start them, to remind) and
-- completed ones by end (to archive them).
CREATE INDEX events_confirmed_start ON events (start_date) WHERE status = 'confirmed';
CREATE INDEX events_completed_end ON events (end_date) WHERE status = 'completed';

-- Every email Ticketflow sends, kept until the SMTP server accepted it.
-- `context` is a snapshot of what the message says, taken with the change.
CREATE TABLE email_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key       text NOT NULL UNIQUE,
    template        text NOT NULL CHECK (template IN ('reservation_confirmed', 'reservation_cancelled',
                                                      'reservation_new_admin', 'event_reminder')),
    recipient       text,  -- NULL: the configured admin address
    context         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_error      text,
    queued_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at         timestamptz,
    smtp_message_id text,
    CONSTRAINT email_outbox_sent_has_time CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);

CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE status = 'queued';

COMMENT ON TABLE email_outbox IS
    'Re-queue a dead message with: UPDATE email_outbox SET status = ''queued'', attempts = 0, '
    'next_attempt_at = now() WHERE id = ...';

-- Wake the sender as soon as something is queued (it also polls, so a lost
-- notification only costs latency).
CREATE FUNCTION ticketflow_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ticketflow_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER email_outbox_notify
    AFTER INSERT OR UPDATE OF status ON email_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION ticketflow_outbox_notify();

-- The seed's Django signals, as a trigger: a new reservation tells the admin,
-- a change to confirmed or cancelled tells the customer. Queued in the
-- transaction that made the change, whichever application made it; the
-- deduplication key makes the same change queue one message at most.
CREATE FUNCTION ticketflow_reservation_emails() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    customer customers%ROWTYPE;
    context  jsonb;
BEGIN
    SELECT * INTO customer FROM customers WHERE id = NEW.customer_id;
    context := jsonb_build_object(
        'reservation_id', NEW.id,
        'status', NEW.status,
        'start_time', NEW.start_time,
        'customer_name', CASE WHEN coalesce(customer.first_name, '') <> ''
                              THEN btrim(customer.first_name || ' ' || coalesce(customer.last_name, ''))
                              ELSE customer.username END,
        'customer_email', customer.email);
    IF TG_OP = 'INSERT' THEN
        INSERT INTO email_outbox (dedup_key, template, recipient, context)
        VALUES ('reservation:' || NEW.id || ':created', 'reservation_new_admin', NULL, context)
        ON CONFLICT (dedup_key) DO NOTHING;
    END IF;
    IF NEW.status IN ('confirmed', 'cancelled')
       AND (TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status) THEN
        INSERT INTO email_outbox (dedup_key, template, recipient, context)
        VALUES ('reservation:' || NEW.id || ':' || NEW.status, 'reservation_' || NEW.status, customer.email, context)
        ON CONFLICT (dedup_key) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER reservations_emails
    AFTER INSERT ON reservations
    FOR EACH ROW EXECUTE FUNCTION ticketflow_reservation_emails();
-- Only changes that send mail fire it: completing reservations in bulk stays cheap.
CREATE TRIGGER reservations_status_emails
    AFTER UPDATE OF status ON reservations
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status AND NEW.status IN ('confirmed', 'cancelled'))
    EXECUTE FUNCTION ticketflow_reservation_emails();
