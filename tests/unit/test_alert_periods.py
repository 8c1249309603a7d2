"""Alert periods and the webhook's text, without a database."""

from datetime import UTC, datetime, timedelta

import pendulum
import pytest

from ticketflow.alerts import BY_NAME, _without_url_secret, period_start, slack_payload


@pytest.mark.parametrize("due_at, minutes, start", [
    (datetime(2026, 7, 14, 13, 2, tzinfo=UTC), 60, datetime(2026, 7, 14, 13, tzinfo=UTC)),
    (datetime(2026, 7, 14, 13, 0, tzinfo=UTC), 60, datetime(2026, 7, 14, 13, tzinfo=UTC)),  # a boundary opens one
    (datetime(2026, 7, 14, 12, 59, 59, 999999, tzinfo=UTC), 60, datetime(2026, 7, 14, 12, tzinfo=UTC)),
    (datetime(2026, 7, 14, 13, 2, tzinfo=UTC), 1440, datetime(2026, 7, 14, tzinfo=UTC)),
    (datetime(2026, 7, 14, 13, 44, tzinfo=UTC), 15, datetime(2026, 7, 14, 13, 30, tzinfo=UTC)),
    # Airflow hands tasks pendulum instants, in whatever zone: the same period.
    (pendulum.datetime(2026, 7, 14, 9, 2, tz="America/Toronto"), 60, datetime(2026, 7, 14, 13, tzinfo=UTC)),
])
def test_a_period_is_counted_from_the_epoch_whatever_the_instant_s_type_and_zone(due_at, minutes, start):
    assert period_start(due_at, timedelta(minutes=minutes)) == start


def test_the_webhook_text_is_slack_mrkdwn_with_item_text_escaped_and_the_rest_counted():
    payload = slack_payload(BY_NAME["tickets_waiting"], 3, ["Ticket #1 <b>VPN</b> & co"])
    assert payload == {"text": "*Ticketflow alert: Tickets waiting for a task (3)*\n"
                               "• Ticket #1 &lt;b&gt;VPN&lt;/b&gt; &amp; co\n"
                               "_... and 2 more: see the automation health dashboard._\n"
                               "_Check that a deployed workflow with steps matches each ticket and that TTS names"
                               " users for its roles._"}


def test_a_webhook_error_never_shows_the_url_s_secret_path():
    url = "https://hooks.slack.com/services/T000/B000/XXXX?token=1"
    error = f"ConnectionError: Max retries exceeded with url: /services/T000/B000/XXXX?token=1 ({url})"
    assert _without_url_secret(error, url) == "ConnectionError: Max retries exceeded with url: /*** (/***)"
