"""Alerts: what operators must be told, at most once per condition and period, by email and a webhook.

Each condition is one query in `sql/queries/alerts/` that lists the things
open as of an instant (a dead message, a waiting ticket...), one row each.
Failed task tries are the exception: the failure notifier records them as they
happen. Every run of the `alerts` DAG, for each condition, in one transaction:

1. keeps `alert_items` in step with what is open: new things are added, things
   no longer open are removed (so the same thing going wrong again alerts again);
2. when some items are in no alert yet and the condition has no alert in the
   run's period, raises one alert listing them all, and queues it in the outbox
   for every `TICKETFLOW_ALERT_EMAILS` address. Items that come after a
   condition's alert wait for the next period: never a storm.

Then it posts the alerts the webhook has not taken yet to the `alerts_webhook`
connection (Slack-compatible JSON), and logs each new alert at ERROR.

An alert about the outbox itself (dead email, the outbox not sending) cannot
count on the outbox: it is posted to the webhook, logged at ERROR in the task
log on every run while it is open, and shown on the dashboard; its email is
queued too, and goes out once the outbox sends again.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row

from ticketflow import queries, settings
from ticketflow.audit import AuditedRun, RunWindow
from ticketflow.db import one

log = logging.getLogger(__name__)

#: How many items an alert lists (the dashboard shows every open one).
MAX_LINES = 50
#: How long a failed task try counts as open, and how far back an unposted alert is still posted.
RECENT = timedelta(hours=24)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Condition:
    name: str
    title: str
    query: str
    advice: str
    #: About the outbox itself: its alert must not depend on the outbox (webhook, ERROR log, dashboard).
    about_outbox: bool = False
    #: Items are recorded as they happen (the failure notifier), not read from the state of the tables.
    recorded: bool = False


FAILED_RUNS = "dag_run_failed"
CONDITIONS: tuple[Condition, ...] = (
    Condition(FAILED_RUNS, "Failed DAG runs", "alerts/failed_runs", recorded=True,
              advice="Open each run in the Airflow UI to read its task log; clear the run to try it again."),
    Condition("outbox_stalled", "Email outbox not sending", "alerts/outbox_stalled", about_outbox=True,
              advice="Check the SMTP server (smtp_default) and the notifications DAG. Nothing queued is lost:"
                     " it goes out when the outbox sends again."),
    Condition("emails_dead", "Dead-lettered emails", "alerts/dead_emails", about_outbox=True,
              advice="Fix the address or the cause in the error, then trigger email_requeue."),
    Condition("tdx_actions_failed", "Failed TDX actions", "alerts/failed_tdx_actions",
              advice="Fix the cause in TDX or in the action file, then trigger tdx_clear_failed_actions."),
    Condition("templates_parked", "Parked recurring templates", "alerts/parked_templates",
              advice="Edit each template's schedule as the reason says: that clears the error and the job"
                     " takes it up again."),
    Condition("tickets_waiting", "Tickets waiting for a task", "alerts/waiting_tickets",
              advice="Check that a deployed workflow with steps matches each ticket and that TTS names users"
                     " for its roles."),
)
BY_NAME = {condition.name: condition for condition in CONDITIONS}


@dataclass(frozen=True)
class AlertSettings:
    recipients: list[str]
    period: timedelta
    waiting: timedelta
    stalled: timedelta

    @classmethod
    def from_env(cls) -> AlertSettings:
        """The `TICKETFLOW_ALERT_*` settings; a bad one raises ValueError naming it."""
        return cls(recipients=settings.alert_emails(),
                   period=timedelta(minutes=settings.alert_period_minutes()),
                   waiting=timedelta(minutes=settings.alert_unallocated_minutes()),
                   stalled=timedelta(minutes=settings.alert_outbox_stalled_minutes()))


def period_start(due_at: datetime, period: timedelta) -> datetime:
    """The period `due_at` falls in, counted from the Unix epoch (with 60 minutes: the hour)."""
    elapsed = due_at - _EPOCH
    elapsed = timedelta(elapsed.days, elapsed.seconds, elapsed.microseconds)  # Airflow's pendulum Duration: plain
    return _EPOCH + elapsed // period * period


def _params(condition: Condition, due_at: datetime, config: AlertSettings) -> dict:
    return {"condition": condition.name, "due_at": due_at, "recorded": condition.recorded,
            "waiting_seconds": config.waiting.total_seconds(), "stalled_seconds": config.stalled.total_seconds()}


# The open things as of the instant: the new ones added, the ones no longer open removed (but only those seen
# up to the instant: an old run cleared later must not forget what later runs saw), failed tries kept until
# listed. Data-modifying CTEs run whether or not the SELECT reads them.
_SYNC = """
WITH open AS (
{query}
),
gone AS (
    DELETE FROM alert_items i
    WHERE i.condition = %(condition)s AND i.observed_at <= %(due_at)s
      AND (i.alert_id IS NOT NULL OR NOT %(recorded)s)
      AND NOT EXISTS (SELECT 1 FROM open o WHERE o.item_key = i.item_key)
),
added AS (
    INSERT INTO alert_items (condition, item_key, dag_id, since, line, observed_at)
    SELECT %(condition)s, o.item_key, o.dag_id, o.since, o.line, %(due_at)s FROM open o
    ON CONFLICT (condition, item_key) DO NOTHING
)
SELECT count(*) FROM open
"""

# One statement: the alert and the items it lists see the same rows, whatever the failure notifier adds meanwhile.
_RAISE = """
WITH alert AS (
    INSERT INTO alerts (condition, period_start, raised_at, run_id, title, item_count, lines)
    SELECT %(condition)s, %(period_start)s, %(due_at)s, %(run_id)s, %(title)s, count(*), '[]'
    FROM alert_items
    WHERE condition = %(condition)s AND alert_id IS NULL AND observed_at <= %(due_at)s
    HAVING count(*) > 0
    ON CONFLICT (condition, period_start) DO NOTHING
    RETURNING id
)
UPDATE alert_items i SET alert_id = alert.id
FROM alert
WHERE i.condition = %(condition)s AND i.alert_id IS NULL AND i.observed_at <= %(due_at)s
RETURNING alert.id, i.since, i.item_key, i.line
"""

_QUEUE_EMAIL = """
INSERT INTO email_outbox (dedup_key, template, recipient, context)
SELECT 'alert:' || %(alert_id)s || ':' || lower(address), 'alert', address, %(context)s
FROM unnest(%(recipients)s::text[]) AS address
ON CONFLICT (dedup_key) DO NOTHING
"""


@dataclass(frozen=True)
class RaisedAlert:
    id: int
    condition: Condition
    item_count: int
    lines: list[str]

    @property
    def more(self) -> int:
        return self.item_count - len(self.lines)


def check_condition(conn: psycopg.Connection, condition: Condition, window: RunWindow,
                    config: AlertSettings) -> tuple[int, RaisedAlert | None]:
    """Bring the condition's items up to date as of the run's instant and raise its alert if one is due.

    Returns how many things are open, and the alert raised (None when nothing new, or the period has one).
    Call it inside a transaction: the items, the alert and its email commit together.
    """
    params = {**_params(condition, window.due_at, config), "run_id": window.run_id, "title": condition.title,
              "period_start": period_start(window.due_at, config.period)}
    query = queries.load(condition.query).strip().rstrip(";")
    open_count = one(conn.execute(_SYNC.format(query=query), params))[0]
    listed = sorted(conn.execute(_RAISE, params).fetchall(), key=lambda row: (row[1], row[2]))
    if not listed:
        return open_count, None
    alert = RaisedAlert(listed[0][0], condition, len(listed), [row[3] for row in listed[:MAX_LINES]])
    conn.execute("UPDATE alerts SET lines = %s WHERE id = %s", (json.dumps(alert.lines), alert.id))
    context = {"condition": condition.name, "title": condition.title, "count": alert.item_count,
               "lines": alert.lines, "more": alert.more, "advice": condition.advice,
               "as_of": window.due_at.isoformat(), "period_minutes": round(config.period.total_seconds() / 60)}
    conn.execute(_QUEUE_EMAIL, {"alert_id": alert.id, "context": json.dumps(context),
                                "recipients": config.recipients})
    return open_count, alert


def describe(alert: RaisedAlert) -> str:
    """The alert as plain text: title and count, its items, what to do."""
    more = [f"... and {alert.more} more: see the automation health dashboard"] if alert.more else []
    return "\n".join([f"Ticketflow alert: {alert.condition.title} ({alert.item_count})",
                      *(f"- {line}" for line in alert.lines), *more, alert.condition.advice])


def _slack_escape(text: str) -> str:
    """Slack reads &, < and > as markup: escaped, an item's text stays text."""
    return html.escape(text, quote=False)


def slack_payload(condition: Condition, item_count: int, lines: list[str]) -> dict:
    """A Slack-compatible incoming-webhook body: `{"text": ...}` in Slack's mrkdwn."""
    more = item_count - len(lines)
    text = "\n".join([f"*Ticketflow alert: {_slack_escape(condition.title)} ({item_count})*",
                      *(f"• {_slack_escape(line)}" for line in lines),
                      *([f"_... and {more} more: see the automation health dashboard._"] if more else []),
                      f"_{_slack_escape(condition.advice)}_"])
    return {"text": text}


class WebhookError(RuntimeError):
    """The webhook did not take a post (unreachable, timed out, or not a 2xx answer)."""


Poster = Callable[[dict], None]


def webhook_poster(conn_id: str = settings.ALERTS_WEBHOOK_CONN_ID) -> Poster | None:
    """A function that posts JSON to the `alerts_webhook` connection, or None when no such connection exists.

    The connection is an http connection whose host is the whole webhook URL
    (for Slack `https://hooks.slack.com/services/...`).
    """
    import requests
    from airflow.providers.http.hooks.http import HttpHook
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    hook = HttpHook(method="POST", http_conn_id=conn_id)

    def post(payload: dict) -> None:
        try:
            hook.run(endpoint=None, json=payload, extra_options={"timeout": (5, 15)})
        except (requests.RequestException, AirflowException, ValueError) as exc:
            raise WebhookError(_without_url_secret(f"{type(exc).__name__}: {exc}", hook.base_url)) from None

    return post


def _without_url_secret(text: str, url: str) -> str:
    """A webhook's path is its secret (Slack's `/services/T../B../X..`): requests' errors name the URL, and
    this text is stored, logged and shown on the dashboard."""
    parts = urlsplit(url)
    for secret in (url, parts.path + (f"?{parts.query}" if parts.query else ""), parts.path):
        if len(secret) > 1:
            text = text.replace(secret, "/***")
    return text


_UNPOSTED = """
SELECT id FROM alerts
WHERE webhook_posted_at IS NULL AND raised_at > %(due_at)s::timestamptz - %(recent)s AND raised_at <= %(due_at)s
ORDER BY id
"""


def post_unposted_alerts(run: AuditedRun, post: Poster) -> None:
    """Post every alert of the last 24 hours the webhook has not taken, oldest first, one transaction each.

    A failed post is recorded on its alert and ends this run's posting (the webhook is
    down: the next run tries again), so an outage costs one timeout per run, not one per alert.
    A worker killed between the post and its commit posts that one alert again on the next run.
    """
    conn = run.conn
    for (alert_id,) in conn.execute(_UNPOSTED, {"due_at": run.window.due_at, "recent": RECENT}).fetchall():
        with run.unit() as outcome:
            row = conn.execute("SELECT condition, item_count, lines FROM alerts"
                               " WHERE id = %s AND webhook_posted_at IS NULL FOR UPDATE SKIP LOCKED",
                               (alert_id,)).fetchone()
            if row is None:
                continue  # another run has it
            name, item_count, lines = row
            try:
                post(slack_payload(BY_NAME[name], item_count, lines))
            except WebhookError as exc:
                conn.execute("UPDATE alerts SET webhook_attempts = webhook_attempts + 1, webhook_error = %s"
                             " WHERE id = %s", (str(exc)[:2000], alert_id))
                outcome.details = {"webhook_failed": 1}
                log.error("the alerts webhook did not take alert %s (%s); the next run tries again: %s",
                          alert_id, name, exc)
            else:
                conn.execute("UPDATE alerts SET webhook_posted_at = clock_timestamp(),"
                             " webhook_attempts = webhook_attempts + 1, webhook_error = NULL WHERE id = %s",
                             (alert_id,))
                outcome.changed, outcome.details = 1, {"webhook_posted": 1}
        if outcome.details.get("webhook_failed"):
            return


def check_alert_conditions(run: AuditedRun, config: AlertSettings, post: Poster | None) -> None:
    """Every condition in its own unit, then the webhook (when there is one), and the ERROR lines."""
    raised: list[RaisedAlert] = []
    still_open: list[Condition] = []
    for condition in CONDITIONS:
        with run.unit() as outcome:
            open_count, alert = check_condition(run.conn, condition, run.window, config)
            outcome.processed = open_count
            if alert is not None:
                outcome.changed, outcome.details = 1, {"raised": [condition.name]}
        if alert is not None:
            raised.append(alert)
        elif open_count and condition.about_outbox:
            still_open.append(condition)
    for alert in raised:
        log.error("%s", describe(alert))
    for condition in still_open:
        log.error("Ticketflow alert still open: %s (alerted already; the dashboard lists it)", condition.title)
    if post is not None:
        post_unposted_alerts(run, post)
    elif raised or still_open:
        log.warning("no %s connection: alerts go by email only; the outbox's own alerts (%s) are only in this"
                    " log and on the dashboard until the outbox sends again", settings.ALERTS_WEBHOOK_CONN_ID,
                    ", ".join(c.title for c in CONDITIONS if c.about_outbox))


def run_alerts_task(run: AuditedRun) -> None:
    """The `alerts` task: the settings (a bad one fails the task before anything is written), the webhook
    connection if there is one, then the checks."""
    check_alert_conditions(run, AlertSettings.from_env(), webhook_poster())


_RECORD_FAILURE = """
INSERT INTO alert_items (condition, item_key, dag_id, since, line, observed_at)
SELECT %(condition)s, %(item_key)s, %(dag_id)s, at, %(line)s, at
FROM (SELECT coalesce(%(failed_at)s::timestamptz, clock_timestamp()) AS at) AS stamp
ON CONFLICT (condition, item_key) DO NOTHING
"""


def record_failed_task(conn: psycopg.Connection, *, dag_id: str, run_id: str, task_id: str, map_index: int,
                       try_number: int, error: str, failed_at: datetime | None = None) -> None:
    """Note a task try that failed for good, for the next alerts run: once per try, however often called.

    `failed_at` defaults to the database's clock: when the failure happened, as a stamp, not a decision.
    """
    task = f"{task_id}[{map_index}]" if map_index >= 0 else task_id
    line = f"{dag_id}: run {run_id}, task {task} failed (try {try_number}): {error}"
    with conn.transaction():
        conn.execute(_RECORD_FAILURE, {"condition": FAILED_RUNS, "dag_id": dag_id, "line": line[:1000],
                                       "item_key": f"{dag_id}/{run_id}/{task}/{try_number}", "failed_at": failed_at})


@dataclass(frozen=True)
class OpenCondition:
    """A condition open now, as the dashboard shows it."""

    condition: Condition
    count: int
    since: datetime
    lines: list[str]
    last_alert_at: datetime | None
    webhook_error: str | None


def open_conditions(conn: psycopg.Connection, now: datetime, readable_dag_ids: Iterable[str],
                    config: AlertSettings, lines: int = 5) -> list[OpenCondition]:
    """The conditions open at `now` with the items a user who may read `readable_dag_ids` may see."""
    readable = set(readable_dag_ids)
    with conn.cursor(row_factory=dict_row) as cur:
        last = {row["condition"]: row for row in cur.execute(
            "SELECT DISTINCT ON (condition) condition, raised_at, webhook_error FROM alerts"
            " WHERE raised_at <= %s ORDER BY condition, raised_at DESC", (now,))}
        found = []
        for condition in CONDITIONS:
            items = [row for row in cur.execute(queries.load(condition.query), _params(condition, now, config))
                     if row["dag_id"] in readable]
            if items:
                latest = last.get(condition.name) or {}
                found.append(OpenCondition(condition, len(items), min(row["since"] for row in items),
                                           [row["line"] for row in items[:lines]], latest.get("raised_at"),
                                           latest.get("webhook_error")))
    return found
