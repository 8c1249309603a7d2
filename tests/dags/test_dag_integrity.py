"""Every DAG file parses, quickly, into a DAG that follows the project's rules."""

import ast
import re
import socket
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import AirflowFailException, ParamValidationError

from ticketflow.dagkit import refuse_undeclared_conf
from ticketflow.settings import PROJECT_ROOT

DAGS_DIR = PROJECT_ROOT / "dags"
PLUGINS_DIR = PROJECT_ROOT / "plugins"
PUBLISHED_DAG_IDS = {"recurring_tickets", "ticket_intake", "ticket_task_assignment", "tdx_ticket_queue", "retention",
                     "reservation_lifecycle", "event_lifecycle", "notifications"}
#: DAGs Ticketflow adds beside the published ones (documented in docs/).
ADDED_DAG_IDS = {"event_archive", "email_requeue", "tdx_clear_failed_actions", "alerts"}
WALL_CLOCK_CALLS = {"now", "utcnow", "today"}  # datetime's, date's, pendulum's; and time.time() below


def _parse_without_network(folder: Path) -> DagBag:
    """Parse a DAG folder with outgoing connections refused: network I/O at import becomes an import error.

    It covers what goes through Python sockets (HTTP and SMTP hooks, requests, asyncpg); libpq's
    C sockets (psycopg) are not seen, which the no-I/O-at-import rule still forbids.
    """
    def refuse(sock, address):
        raise ConnectionRefusedError(f"a DAG file connected to {address} at import time")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        return DagBag(dag_folder=str(folder))


@pytest.fixture(scope="module")
def dagbag():
    return _parse_without_network(DAGS_DIR)


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG was found"


def test_one_dag_per_file_named_after_it(dagbag):
    files = {path.stem for path in DAGS_DIR.glob("*.py")}
    assert set(dagbag.dag_ids) == files


def test_dag_ids_are_those_of_the_contract(dagbag):
    assert set(dagbag.dag_ids) <= PUBLISHED_DAG_IDS | ADDED_DAG_IDS


@pytest.mark.parametrize("dag_id", sorted(path.stem for path in DAGS_DIR.glob("*.py")))
def test_dag_follows_the_house_rules(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "ticketflow" in dag.tags
    assert dag.doc_md and len(dag.doc_md.strip()) > 40
    for task in dag.tasks:
        assert task.owner == "ticketflow", task.task_id
        assert task.retries >= 1, task.task_id
        assert task.retry_exponential_backoff, task.task_id
        hook = task.partial_kwargs.get("pre_execute") if hasattr(task, "partial_kwargs") else task._pre_execute_hook
        assert hook is refuse_undeclared_conf, task.task_id


#: Keys the outside probe passed and saw ignored, and a misspelling of a real Param.
UNDECLARED = {"tdx_ticket_queue": "batch_size", "event_lifecycle": "due_at", "recurring_tickets": "due_at",
              "ticket_intake": "subjet"}


@pytest.mark.parametrize("dag_id", sorted(path.stem for path in DAGS_DIR.glob("*.py")))
def test_every_task_refuses_a_conf_key_its_dag_does_not_declare_and_takes_those_it_does(dagbag, dag_id):
    from types import SimpleNamespace

    dag = dagbag.dags[dag_id]
    key = UNDECLARED.get(dag_id, "batch_size")
    for task in dag.tasks:
        context = {"dag": dag, "task": task, "dag_run": SimpleNamespace(conf={key: 1, **dag.params.dump()})}
        with pytest.raises(AirflowFailException, match=f"does not take the conf key\\(s\\) '{key}'"):
            refuse_undeclared_conf(context)
        refuse_undeclared_conf({**context, "dag_run": SimpleNamespace(conf=dag.params.dump())})
        refuse_undeclared_conf({**context, "dag_run": SimpleNamespace(conf=None)})


def _wall_clock_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                node.func.attr in WALL_CLOCK_CALLS or ast.unparse(node.func) == "time.time"):
            where = path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path
            found.append(f"{where}:{node.lineno} {ast.unparse(node.func)}()")
    return found


#: Where the wall clock is read: the one seam, for what shows "now" to a person and decides nothing; and the TDX
#: client's waits, which compare TDX's rate-limit reset dates (wall-clock dates in its answers) and its token's
#: expiry with the clock: how long to wait, never what is due.
WALL_CLOCK_ALLOWED = {"include/ticketflow/clock.py", "include/ticketflow/tdx/client.py"}
#: Retry backoff is operational, not a run's decision: a rerun must not replay an old retry schedule.
SQL_CLOCK_ALLOWED = {"assignment/match_pending.sql", "assignment/ready.sql", "assignment/record_failure.sql",
                     "outbox/ready.sql"}
SQL_CLOCK = re.compile(r"\b(now|clock_timestamp|statement_timestamp|transaction_timestamp|timeofday)\s*\(\s*\)"
                       r"|\bcurrent_(timestamp|date|time)\b|\blocal(timestamp|time)\b")
# when a row changed
SQL_STAMP = re.compile(r"\b\w+\s*=\s*clock_timestamp\(\)|'assigned_on', to_char\(clock_timestamp\(\)")


def test_no_dag_or_domain_code_reads_the_wall_clock():
    """Due-ness comes from the run's data interval: reruns and backfills must give the same answer."""
    sources = [*DAGS_DIR.glob("*.py"), *(PROJECT_ROOT / "include").rglob("*.py"), *PLUGINS_DIR.rglob("*.py")]
    hits = [hit for path in sources for hit in _wall_clock_reads(path)]
    assert [hit for hit in hits if hit.split(":")[0] not in WALL_CLOCK_ALLOWED] == []


def test_sql_queries_do_not_read_the_clock_to_decide_what_is_due():
    """Only stamping a change (updated_at = clock_timestamp()) and the listed retry backoffs read the clock."""
    queries_dir = PROJECT_ROOT / "sql" / "queries"
    for path in queries_dir.rglob("*.sql"):
        code = "\n".join(line.split("--")[0] for line in path.read_text().lower().splitlines())
        if path.relative_to(queries_dir).as_posix() not in SQL_CLOCK_ALLOWED:
            assert not SQL_CLOCK.search(SQL_STAMP.sub("", code)), path


def test_the_clock_guards_see_what_they_guard(tmp_path):
    (tmp_path / "sneaky.py").write_text("from datetime import datetime\nstamp = datetime.now()\n")
    assert _wall_clock_reads(tmp_path / "sneaky.py")
    (tmp_path / "epoch.py").write_text("import time\nstamp = time.time()\n")
    assert _wall_clock_reads(tmp_path / "epoch.py")
    for sql in ("WHERE start_time <= clock_timestamp()", "WHERE d < now()", "AND x < localtimestamp"):
        assert SQL_CLOCK.search(SQL_STAMP.sub("", sql.lower())), sql
    assert not SQL_CLOCK.search(SQL_STAMP.sub("", "set updated_at = clock_timestamp()"))


def test_a_dag_file_that_calls_a_service_at_import_is_caught(tmp_path):
    """The guard the DAG folder is parsed under really turns import-time I/O into an import error."""
    (tmp_path / "eager.py").write_text(
        "import requests\n"
        "from airflow.sdk import dag\n"
        "requests.get('http://127.0.0.1:8091/api/v1/tts/round-robin/', timeout=2)\n"
        "@dag(dag_id='eager', schedule=None)\n"
        "def eager():\n    pass\n"
        "eager()\n")
    bag = _parse_without_network(tmp_path)
    assert "eager" not in bag.dag_ids
    [error] = bag.import_errors.values()
    assert "a DAG file connected to ('127.0.0.1', 8091) at import time" in error


@pytest.mark.parametrize("name, value", [("subject", "   "), ("department", "\t"), ("category", ""),
                                         ("external_id", " "), ("requester_email", "ana@example"),
                                         ("requester_email", "ana example.com"), ("priority", "asap")])
def test_intake_params_refuse_blank_text_and_bad_emails_before_a_run_exists(dagbag, name, value):
    param = dagbag.dags["ticket_intake"].params.get_param(name)
    with pytest.raises(ParamValidationError):
        param.resolve(value)


def test_intake_params_take_a_proper_ticket(dagbag):
    params = dagbag.dags["ticket_intake"].params
    ticket = {"subject": "VPN down", "department": "IT", "category": "Network", "external_id": "EXT-1",
              "requester_email": "ana@example.com", "priority": "high", "description": None}
    assert {name: params.get_param(name).resolve(value) for name, value in ticket.items()} == ticket


@pytest.mark.parametrize("dag_id, name, too_large, largest", [
    ("email_requeue", "message_ids", [2**63], [2**63 - 1]),           # bigint ids
    ("email_requeue", "message_ids", list(range(1, 1002)), list(range(1, 1001))),  # a bounded list
    ("tdx_clear_failed_actions", "ticket_id", 2**31, 2**31 - 1),     # TDX's Int32 ids
    ("tdx_ticket_queue", "report_id", 2**31, 2**31 - 1),
])
def test_id_params_stop_where_the_ids_do_instead_of_failing_in_the_database(dagbag, dag_id, name, too_large,
                                                                            largest):
    param = dagbag.dags[dag_id].params.get_param(name)
    with pytest.raises(ParamValidationError):
        param.resolve(too_large)
    assert param.resolve(largest) == largest
