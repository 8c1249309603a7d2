-- Alerts: what an operator must be told (a task failed for good, email went
-- dead, the outbox stopped sending, TDX actions failed, recurring templates
-- were parked, tickets wait too long for a task), at most one alert per
-- condition and period, mailed through the outbox with the new 'alert' template.
-- depends: 0011_zone_names_postgresql_reads_as_abbreviations

-- One row per alert raised. The unique key is the deduplication: reruns and
-- parallel runs of the alerts DAG raise a condition's alert once per period.
CREATE TABLE alerts (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    condition         text NOT NULL,
    period_start      timestamptz NOT NULL,
    raised_at         timestamptz NOT NULL,  -- the due instant of the run that raised it
    run_id            text NOT NULL,
    title             text NOT NULL,
    item_count        integer NOT NULL CHECK (item_count > 0),
    lines             jsonb NOT NULL CHECK (jsonb_typeof(lines) = 'array'),  -- what the message lists
    webhook_posted_at timestamptz,
    webhook_attempts  integer NOT NULL DEFAULT 0,
    webhook_error     text,
    CONSTRAINT alerts_one_per_condition_and_period UNIQUE (condition, period_start)
);

-- Alerts the webhook has not taken yet (it was down, or not configured then).
CREATE INDEX alerts_webhook_unposted ON alerts (raised_at) WHERE webhook_posted_at IS NULL;

-- The open things each condition is about, one row each (a failed task try, a
-- dead message, a waiting ticket...): `alert_id` stays NULL until an alert
-- lists the row. A row goes when its thing is no longer open, so the same
-- thing going wrong again is alerted again; deleting an alert deletes the rows
-- it listed, and those still open are alerted anew.
CREATE TABLE alert_items (
    condition   text NOT NULL,
    item_key    text NOT NULL,
    dag_id      text NOT NULL,  -- the DAG it belongs to: who may see it on the dashboard
    since       timestamptz NOT NULL,
    line        text NOT NULL,
    observed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    alert_id    bigint REFERENCES alerts (id) ON DELETE CASCADE,
    PRIMARY KEY (condition, item_key)
);

CREATE INDEX alert_items_unalerted ON alert_items (condition, observed_at) WHERE alert_id IS NULL;
CREATE INDEX alert_items_alert ON alert_items (alert_id) WHERE alert_id IS NOT NULL;

-- The alerts DAG and the dashboard read dead messages and parked templates
-- every few minutes; neither had an index and both tables only grow.
CREATE INDEX email_outbox_dead ON email_outbox (id) WHERE status = 'dead';
CREATE INDEX tickets_parked_templates ON tickets (id) WHERE is_recurring AND recurrence_error IS NOT NULL;

ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_template_check;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_template_check
    CHECK (template IN ('reservation_confirmed', 'reservation_cancelled', 'reservation_new_admin',
                        'event_reminder', 'task_completed', 'alert'));
