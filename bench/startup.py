"""Start-up: from `make run` to a usable UI, in a fresh clone (cold) and again (warm); and how long Ctrl-C takes.

The repository is cloned (its committed HEAD) into a scratch folder, and `make run` is started there as
the README says, on free ports. "Usable" means the banner is printed (every DAG is parsed and Airflow
reports the scheduler, DAG processor and triggerer healthy) and the README's login gets a token. Cold
includes creating `.venv` from the pinned requirements (pip's download cache as this machine has it),
initialising the embedded PostgreSQL and migrating both databases; warm is the second start of the same
clone. Each start is stopped with SIGINT to its process group, as Ctrl-C does. Target: warm under 20 s.

Prints one JSON object on its last line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import requests
from _support import PROJECT_ROOT

from devstack.stack import ADMIN_PASSWORD, ADMIN_USER, Ports

BANNER_END = "Press Ctrl-C to stop everything."


def _start(clone: Path, ports: Ports) -> dict[str, float]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TICKETFLOW_", "PYTHONPATH"))}
    env.update(ports.environment())
    started = time.monotonic()
    make = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=clone, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    output = []
    try:
        assert make.stdout is not None
        for line in make.stdout:
            output.append(line)
            if line.startswith(BANNER_END):
                break
        else:
            raise RuntimeError("make run ended without its banner:\n" + "".join(output)[-5000:])
        banner = time.monotonic() - started
        login = requests.post(f"http://127.0.0.1:{ports.api}/auth/token", timeout=30,
                              json={"username": ADMIN_USER, "password": ADMIN_PASSWORD})
        login.raise_for_status()
        usable = time.monotonic() - started
        stopping = time.monotonic()
        os.killpg(make.pid, signal.SIGINT)
        make.communicate(timeout=120)
        return {"banner_seconds": round(banner, 1), "usable_seconds": round(usable, 1),
                "ctrl_c_seconds": round(time.monotonic() - stopping, 1)}
    finally:
        if make.poll() is None:  # stopped or failed early: Ctrl-C, so the stack cleans up after itself
            os.killpg(make.pid, signal.SIGINT)
            try:
                make.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(make.pid, signal.SIGKILL)
                make.wait()


def _stop_like_ctrl_c(signum, frame):
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)  # a stopped benchmark stops the stack it started too
    with tempfile.TemporaryDirectory(prefix="ticketflow-startup-") as scratch:
        clone = Path(scratch) / "ticketflow"
        subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(PROJECT_ROOT), str(clone)], check=True)
        ports = Ports.free()
        try:
            cold = _start(clone, ports)
            print(f"cold (fresh clone): usable after {cold['usable_seconds']} s", flush=True)
            warm = _start(clone, ports)
            print(f"warm (second start): usable after {warm['usable_seconds']} s", flush=True)
        finally:
            shutil.rmtree(clone / ".local", ignore_errors=True)
    summary = [f"`make run` in a fresh clone: a usable UI after {cold['usable_seconds']} s (creating .venv included)",
               f"`make run` again (warm): a usable UI after {warm['usable_seconds']} s (target: under 20 s)",
               f"Ctrl-C: everything stopped {warm['ctrl_c_seconds']} s later"]
    print(json.dumps({"cold": cold, "warm": warm, "warm_target_seconds": 20, "summary": summary}))


if __name__ == "__main__":
    main()
