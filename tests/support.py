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


def connected_standin(server, port_name: str, monkeypatch, only: tuple[str, ...] = ()):
    """Start a stand-in and point the connections Ticketflow reads at it, for one test; stop it afterwards.

    A fixture body: `yield from connected_standin(SmtpStandIn(path), "smtp", monkeypatch)`. `only` names the
    connection variables to set, so that one stand-in does not move another's connection back to its default port.
    """
    from dataclasses import replace

    from devstack.stack import Ports, connections

    server.start()
    wanted = connections(replace(Ports(), **{port_name: server.port}), "postgresql://unused@127.0.0.1:1/x")
    for name, value in wanted.items():
        if not only or name in only:
            monkeypatch.setenv(name, value)
    try:
        yield server
    finally:
        server.stop()
