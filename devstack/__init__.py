"""Development and test tooling: embedded PostgreSQL, stand-ins, the local stack. Not used by the DAGs."""

import random
import socket
from pathlib import Path

#: Where free ports are picked: below Linux's default ephemeral range (32768-60999), so the outgoing
#: connections of a busy machine cannot take a port between the moment it is picked and the moment a
#: server binds it (servers start a minute or two later).
PORT_RANGE = (20000, 32767)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return (32768, 60999)
    return low, high


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, outside the ephemeral range."""
    low, high = _ephemeral_range()
    candidates = [p for p in range(*PORT_RANGE) if not low <= p <= high]
    for port in random.sample(candidates, 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {PORT_RANGE} after 200 tries")
