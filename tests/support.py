"""What several tests need and the product does not."""

import time


def eventually(condition, seconds: float = 60, what: str = "the condition", interval: float = 0.5):
    """The value of `condition()` once it is truthy; AssertionError naming `what` if it is not within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met after {seconds:.0f}s")


def local_to_instant(wall, tz):
    """The reference model of RFC 5545 section 3.3.5's reading of a local wall time (zoneinfo with fold=0: a
    time in a gap takes the offset before it, a repeated time its first reading). The product reads wall times
    in PostgreSQL (ticketflow_local_to_instant); tests hold it to this model."""
    from datetime import UTC

    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def model_wall_reader(walls, tz_name):
    """A `ticketflow.recurrence.WallReader` by the model, for tests of the RRULE expansion without a database."""
    from zoneinfo import ZoneInfo

    return [local_to_instant(wall, ZoneInfo(tz_name)) for wall in walls]
