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
