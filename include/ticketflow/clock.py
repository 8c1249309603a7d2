"""The one place Ticketflow reads the wall clock.

Automations never do: they decide from their run's data interval. Only what
shows the present to a person (the dashboard, an API answer stamped "as of")
asks here, and takes the instant as a parameter everywhere below, so tests
pass a fixed one and no test depends on the date it runs.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The present, in UTC."""
    return datetime.now(UTC)
