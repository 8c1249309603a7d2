"""Writes docs/benchmarks.md from what `make bench` measured: each script's own description, its figures, the
date and the machine. Benchmark runs change that page, never the README.

    python bench/_report.py .local/bench [SCRIPT ...]   # the folder of <script>.log files; only these scripts
"""

from __future__ import annotations

import ast
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PAGE = PROJECT_ROOT / "docs" / "benchmarks.md"


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal"))
    postgres = subprocess.run([_postgres_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    from importlib.metadata import version

    return {"CPU": f"{cpu}, {os.cpu_count()} cores", "memory": f"{memory_kb / 1024 / 1024:.0f} GiB",
            "system": f"{platform.system()} {platform.release()}", "Python": platform.python_version(),
            "PostgreSQL": postgres or "unknown", "Airflow": version("apache-airflow")}


def _postgres_binary() -> str:
    import importlib.util

    spec = importlib.util.find_spec("pgserver")
    return str(Path(spec.origin).parent / "pginstall" / "bin" / "postgres") if spec and spec.origin else "postgres"


def description(script: Path) -> tuple[str, str]:
    """The script's docstring: its first line as the title, the rest as what it measures and how."""
    docstring = ast.get_docstring(ast.parse(script.read_text())) or script.stem
    title, _, body = docstring.partition("\n")
    body = "\n".join(line for line in body.splitlines() if "JSON object on its last line" not in line)
    return title.strip().rstrip("."), body.strip()


def figures(log: Path) -> dict | None:
    """The JSON object on the last line of a script's output, or None when it failed."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    try:
        found = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def _flatten(value, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(value, dict):
        return [row for key, inner in value.items() for row in _flatten(inner, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), value)]


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _sections(page: str) -> dict[str, str]:
    """The sections of an earlier page by title, for the scripts not measured this time."""
    return {chunk.split("\n", 1)[0]: "## " + chunk.rstrip("\n") for chunk in page.split("\n## ")[1:]}


def render(logs: Path, now: datetime, earlier: str = "", only: set[str] | None = None) -> str:
    """The page; with `only`, just those scripts' logs are read and every other section is kept from `earlier`."""
    lines = ["# Benchmarks", "",
             f"Written by `make bench` on {now:%Y-%m-%d %H:%M} UTC. Each section is one script in `bench/`: what it",
             "measures (the script's own description) and the figures of its last run. `make bench ONLY=<name>`",
             "runs one script again; the other sections keep the figures they had.", "", "| machine | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in machine().items()]
    kept = _sections(earlier)
    for script in sorted((PROJECT_ROOT / "bench").glob("[!_]*.py")):
        title, body = description(script)
        log = logs / f"{script.stem}.log"
        if (not log.exists() or (only and script.stem not in only)) and title in kept:
            lines += ["", kept[title]]  # not run this time: its last figures stay
            continue
        lines += ["", f"## {title}", "", f"`bench/{script.name}`", ""]
        if body:
            lines += [body, ""]
        found = figures(log) if log.exists() else None
        if found is None:
            lines += ["Not measured: the script has no figures on record" +
                      (f" (it failed; see `{log.relative_to(PROJECT_ROOT)}`)." if log.exists() else ".")]
            continue
        summary = found.pop("summary", [])
        lines += [f"- {line}" for line in summary] + ([""] if summary else [])
        lines += ["<details><summary>Every figure</summary>", "", "| figure | value |", "|---|---|"]
        lines += [f"| `{name}` | {_cell(value)} |" for name, value in _flatten(found)]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    logs = Path(argv[0]) if argv else PROJECT_ROOT / ".local" / "bench"
    only = set(argv[1:]) or None
    PAGE.write_text(render(logs, datetime.now(UTC), PAGE.read_text() if PAGE.exists() else "", only))
    print(f"wrote {PAGE.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
