"""Development and test tooling: embedded PostgreSQL, stand-ins, the local stack. Not used by the DAGs."""

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def eventually(condition, seconds: float = 60, what: str = "the condition", interval: float = 0.5):
    """The value of `condition()` once it is truthy; AssertionError naming `what` if it is not within `seconds`."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met after {seconds:.0f}s")
