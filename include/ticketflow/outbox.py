"""The email outbox: every message stays in PostgreSQL until the SMTP server accepted it.

Messages are queued by database triggers in the transaction that made the
change (see migration 0003) and by the event lifecycle (reminders). The
sender takes one message at a time: it locks the row (SKIP LOCKED, so
parallel senders never take the same one), hands it to SMTP and marks it
sent in that same transaction. A crash after the SMTP server accepted a
message and before the commit sends that one message again, with the same
Message-ID (made from the row's `message_key`), so a receiver that collapses
duplicates by Message-ID keeps one; nothing else can be lost or doubled. A failure schedules a retry with exponential
backoff; after the last attempt the message is parked as `dead`.

Retry timing is wall-clock time by nature (when to try SMTP again), so it is
read from PostgreSQL's clock_timestamp(), not from a DAG run's interval.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from functools import cache
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import jinja2
import psycopg

from ticketflow.audit import AuditedRun
from ticketflow.db import one

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
SUBJECTS = {
    "reservation_confirmed": "Your Reservation is Confirmed!",
    "reservation_cancelled": "Your Reservation has been Cancelled",
    "reservation_new_admin": "🔔 New Reservation #{reservation_id} - Action Required",  # the seed's subject
    "event_reminder": "Reminder: {title} starts on {date} at {time}",
    "task_completed": "Ticket #{ticket_id} is done: {ticket_subject}",
    "alert": "Ticketflow alert: {title} ({count})",
}
RETRY_BASE_SECONDS = 30
#: Refusals of one message (its recipient, sender or content); the session stays usable.
MESSAGE_ERRORS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError,
                  smtplib.SMTPNotSupportedError)
#: Errors that mean the server, not the message, is the problem (smtplib's errors are OSErrors too,
#: so MESSAGE_ERRORS must be told apart first).
SERVER_ERRORS = (OSError,)
RETRY_MAX_SECONDS = 3600

_CLAIM = """
SELECT id, message_key, template, recipient, context, attempts, clock_timestamp() AS attempted_at
FROM email_outbox
WHERE status = 'queued' AND next_attempt_at <= clock_timestamp()
ORDER BY next_attempt_at, id
LIMIT 1
FOR UPDATE SKIP LOCKED
"""

_SENT = """
UPDATE email_outbox
SET status = 'sent', sent_at = clock_timestamp(), attempts = attempts + 1, smtp_message_id = %s, last_error = NULL
WHERE id = %s
"""

_FAILED = """
UPDATE email_outbox
SET attempts = attempts + 1,
    last_error = %(error)s,
    status = CASE WHEN attempts + 1 >= %(max_attempts)s THEN 'dead' ELSE 'queued' END,
    next_attempt_at = clock_timestamp()
        + make_interval(secs => least(%(base)s * power(2, attempts), %(cap)s))
WHERE id = %(id)s
RETURNING status
"""


class SmtpUnavailable(ConnectionError):
    """The SMTP server cannot be reached: no message is charged an attempt; the task retries."""


@contextmanager
def smtp_sender(conn_id: str = "smtp_default") -> Iterator[tuple[Callable[[EmailMessage], None], str]]:
    """A send function over one authenticated SMTP session of `conn_id`, and the sender address.

    The provider's hook opens the session (host, port, TLS, login from the
    connection); the message itself is built here because the hook's own
    send builds HTML-only messages and we send a plain-text part too.
    """
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    hook = SmtpHook(smtp_conn_id=conn_id)
    try:
        hook.get_conn()
    except Exception as exc:
        raise SmtpUnavailable(f"cannot open an SMTP session with {conn_id}: {exc}") from exc

    client = hook._smtp_client
    if client is None:  # get_conn() opens it or raises
        raise SmtpUnavailable(f"cannot open an SMTP session with {conn_id}")

    def send(message: EmailMessage) -> None:
        try:
            client.send_message(message)
        except MESSAGE_ERRORS:
            raise
        except SERVER_ERRORS as exc:
            raise SmtpUnavailable(f"SMTP session lost: {exc}") from exc

    try:
        yield send, hook.from_email or "ticketflow@localhost"
    finally:
        try:
            hook.__exit__(None, None, None)
        except SERVER_ERRORS:
            pass  # the session is gone already; nothing is left to close


@cache
def _environment(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=autoescape,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render(template: str, context: dict, timezone: str) -> tuple[str, str, str]:
    """Subject, plain text and HTML of one message; dates as dd/mm/YYYY and HH:MM in `timezone`."""
    instant = context.get("start_time") or context.get("completed_at") or context["as_of"]
    start = datetime.fromisoformat(instant).astimezone(ZoneInfo(timezone))
    values = {**context, "date": start.strftime("%d/%m/%Y"), "time": start.strftime("%H:%M"), "timezone": timezone}
    subject = " ".join(SUBJECTS[template].format(**values).split())  # a line break in a title is no header break
    text = _environment(False).get_template(f"{template}.txt.j2").render(subject=subject, **values)
    html = _environment(True).get_template(f"{template}.html.j2").render(subject=subject, **values)
    return subject, text, html


def message_id(message_key: UUID, sender: str) -> str:
    """The Message-ID of one outbox row: the same on every attempt, so a resend is recognisably the same message."""
    return f"<{message_key}@{sender.rpartition('@')[2] or 'ticketflow.local'}>"


def build_message(template: str, context: dict, recipient: str, sender: str, timezone: str,
                  message_key: UUID, attempted_at: datetime) -> EmailMessage:
    """The message of one outbox row. Its Date is this attempt's: a message delayed by an outage or re-queued
    days later is not filed among old mail, nor scored as stale by spam filters; its Message-ID stays the same."""
    subject, text, html = render(template, context, timezone)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(attempted_at)
    message["Message-ID"] = message_id(message_key, sender)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _address(recipient: str | None, admin_email: str) -> str:
    """Where a message goes: its recipient, or the admin for admin messages (NULL recipient), never a fallback."""
    address = admin_email if recipient is None else recipient
    if not address.strip():
        raise ValueError("no recipient address: the customer has an empty email")
    return address


def send_due_messages(run: AuditedRun, send: Callable[[EmailMessage], None], *, sender: str, admin_email: str,
                      timezone: str, max_attempts: int, limit: int = 10_000) -> None:
    """Send queued messages whose time has come, one transaction per message, until none is left."""
    conn: psycopg.Connection = run.conn
    for _ in range(limit):
        with run.unit() as outcome:
            claimed = conn.execute(_CLAIM).fetchone()
            if claimed is None:
                return
            message_id, message_key, template, recipient, context, attempts, attempted_at = claimed
            outcome.processed = 1
            shown = admin_email if recipient is None else recipient  # who the log line names
            try:
                message = build_message(template, context, _address(recipient, admin_email), sender, timezone,
                                        message_key, attempted_at)
                send(message)
            except SmtpUnavailable as exc:
                log.error("Failed to send email to %s: %s", shown, exc)
                raise  # rolls this unit back: the message stays queued, uncharged
            except Exception as exc:  # a failure of this message: recorded on it; the batch goes on
                reason = f"{type(exc).__name__}: {exc}"
                status = one(conn.execute(_FAILED, {"error": reason[:2000],
                                                    "id": message_id, "max_attempts": max_attempts,
                                                    "base": RETRY_BASE_SECONDS, "cap": RETRY_MAX_SECONDS}))[0]
                outcome.details = {"failed": 1, "dead": int(status == "dead")}
                log.error("Failed to send email to %s: %s%s", shown, reason,
                          " (dead: no attempt left)" if status == "dead" else "")
            else:
                conn.execute(_SENT, (message["Message-ID"], message_id))
                outcome.changed = 1
                outcome.details = {"sent": 1}
                log.info("Email sent to %s", shown)


def send_queued_email(run: AuditedRun) -> None:
    """The notifications task: every message due now, through `smtp_default`."""
    from ticketflow import settings

    timezone = settings.default_timezone()  # a bad setting fails the task, and no message is charged for it
    with smtp_sender() as (send, sender):
        send_due_messages(run, send, sender=sender, admin_email=settings.admin_email(),
                          timezone=timezone, max_attempts=settings.outbox_max_attempts())


def requeue_dead(conn: psycopg.Connection, message_ids: list[int] | None) -> int:
    """Give dead messages (all, or those listed) a fresh set of attempts; the outbox NOTIFY wakes the sender."""
    with conn.transaction():
        return conn.execute(
            "UPDATE email_outbox SET status = 'queued', attempts = 0, next_attempt_at = clock_timestamp()"
            " WHERE status = 'dead' AND (%(ids)s::bigint[] IS NULL OR id = ANY (%(ids)s::bigint[]))",
            {"ids": message_ids or None}).rowcount
