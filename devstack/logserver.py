"""Airflow's task-log server, on 127.0.0.1 only, for the local stack.

Airflow's own log servers (started by the scheduler, the triggerer and each
Celery worker) listen on every interface and cannot be told otherwise. The
local stack starts those components with `--skip-serve-logs` and runs this
instead: the same app (`airflow.utils.serve_logs.log_server`, which checks
the API server's signed requests) on loopback, on the worker and triggerer
log ports. Every component of the local stack writes to the same log folder
and reports its host as 127.0.0.1, so one server answers for all of them.

    python -m devstack.logserver --port 8793 --port 8794
"""

from __future__ import annotations

import argparse
import asyncio

import uvicorn


async def serve(ports: list[int]) -> None:
    from airflow.utils.serve_logs.log_server import get_app

    app = get_app()
    servers = [uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
               for port in ports]
    await asyncio.gather(*(server.serve() for server in servers))


def hostname() -> str:
    """`[core] hostname_callable` of the local stack: where the API server finds a task's log server."""
    return "127.0.0.1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, action="append", required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
