"""docker-compose.yaml checked statically: no Docker engine runs here."""

import ast
import importlib.metadata
import json
import re
import sys

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from devstack.postgres import EmbeddedPostgres
from devstack.stack import AIRFLOW_COMPONENTS, LocalStack, Ports, shared_airflow_settings
from ticketflow import settings
from ticketflow.settings import PROJECT_ROOT

AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker", "airflow-init"}
CONNECTIONS = {"ticketing_db", "tts_api", "tdx_api", "smtp_default", "airflow_metadata_db"}
VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")
#: What production must set: compose refuses to start without them rather than fall back to a default.
REQUIRED = {"AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_FERNET_KEY", "POSTGRES_PASSWORD",
            "TICKETFLOW_DB_PASSWORD", "TICKETFLOW_ADMIN_USERS", "TICKETFLOW_TDX_REPORT_ID", "TICKETFLOW_ADMIN_EMAIL"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yaml").read_text())


def _interpolated(value: str) -> str:
    """What compose makes of a value: every ${X:-default} becomes default, a required ${X:?...} a stand-in."""
    return VARIABLE.sub(lambda m: f"required-{m.group(1).lower()}" if m.group(2) == "?" else m.group(3) or "",
                        str(value))


def test_every_production_service_is_there(compose):
    assert AIRFLOW_SERVICES | {"postgres", "redis"} <= set(compose["services"])


def test_airflow_runs_on_celery_with_redis_and_postgres(compose):
    for name in AIRFLOW_SERVICES:
        env = compose["services"][name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:"), name
        assert _interpolated(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).startswith("postgresql+psycopg2://"), name


def test_long_running_services_have_healthchecks(compose):
    for name in (AIRFLOW_SERVICES - {"airflow-init"}) | {"postgres", "redis"}:
        assert compose["services"][name]["healthcheck"]["test"], name


def test_every_airflow_container_shares_jwt_secret_and_execution_api(compose):
    pairs = {(compose["services"][n]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"],
              compose["services"][n]["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
             for n in AIRFLOW_SERVICES}
    assert len(pairs) == 1
    assert next(iter(pairs))[1] == "http://airflow-apiserver:8080/execution/"


def test_the_connections_are_configured_and_valid(compose):
    env = compose["services"]["airflow-worker"]["environment"]
    conns = {key.removeprefix("AIRFLOW_CONN_").lower(): _interpolated(value)
             for key, value in env.items() if key.startswith("AIRFLOW_CONN_")}
    assert set(conns) == CONNECTIONS
    assert conns["ticketing_db"].startswith("postgresql://ticketflow:")
    tdx = json.loads(conns["tdx_api"])
    assert tdx["host"].endswith("/TDWebApi/api")
    assert tdx["extra"] == {"app_id": 46, "asset_app_id": 45}
    assert json.loads(conns["tts_api"])["conn_type"] == "http"
    assert json.loads(conns["smtp_default"])["conn_type"] == "smtp"
    metadata = _interpolated(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])  # retention's airflow db clean: the same
    assert metadata.replace("+psycopg2", "").replace("@postgres/", "@postgres:5432/") == conns["airflow_metadata_db"]


def test_project_code_is_mounted_and_init_migrates_both_databases(compose):
    for name in AIRFLOW_SERVICES:
        mounts = {volume.split(":")[1] for volume in compose["services"][name]["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include", "/opt/airflow/sql",
                "/opt/airflow/config"} <= mounts
    init = " ".join(compose["services"]["airflow-init"]["command"])
    assert "airflow db migrate" in init and "python -m ticketflow.migrate" in init
    assert f"airflow pools set {settings.TDX_POOL} {settings.TDX_POOL_SLOTS} " in init
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert compose["services"][name]["depends_on"]["airflow-init"]["condition"] == \
            "service_completed_successfully"


def test_generated_passwords_survive_container_recreation(compose):
    env = compose["services"]["airflow-apiserver"]["environment"]
    path = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    mounts = dict(volume.split(":")[::-1] for volume in compose["services"]["airflow-apiserver"]["volumes"])
    assert mounts["/opt/airflow/auth"] == "airflow-auth" and path.startswith("/opt/airflow/auth/")
    assert "airflow-auth" in compose["volumes"]


DEV_TOOLS = {"pytest", "hypothesis", "schemathesis", "playwright", "pgserver", "aiosmtpd", "ruff", "mypy"}


def test_image_is_the_official_airflow_plus_the_runtime_requirements_only():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    runtime = _pins("requirements.txt")
    assert re.search(rf"^FROM apache/airflow:{re.escape(runtime['apache-airflow'])}-python3[.]11$", dockerfile, re.M)
    assert "-r /opt/ticketflow/requirements.txt" in dockerfile
    assert "requirements-dev" not in dockerfile
    assert not DEV_TOOLS & set(runtime)


def test_every_requirement_is_pinned_and_the_dev_tools_sit_on_top_of_the_runtime():
    for name in ("requirements.txt", "requirements-dev.txt"):
        lines = [line.strip() for line in (PROJECT_ROOT / name).read_text().splitlines()]
        loose = [line for line in lines if line and not line.startswith(("#", "-r ")) and "==" not in line]
        assert loose == [], name
    dev_lines = (PROJECT_ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r requirements.txt" in dev_lines
    dev = _pins("requirements-dev.txt")
    assert DEV_TOOLS <= set(dev) and not set(dev) & set(_pins("requirements.txt"))


def test_the_runtime_requirements_cover_every_import_and_every_dependency():
    """What include/, dags/ and plugins/ import is pinned in requirements.txt, and so is all it needs."""
    runtime = set(_pins("requirements.txt"))
    distributions = importlib.metadata.packages_distributions()
    missing = {module: distributions.get(module) for module in _third_party_imports()
               if not {canonicalize_name(d) for d in distributions.get(module, [])} & runtime}
    assert missing == {}
    assert _with_dependencies(runtime) - runtime == set()


def test_production_code_never_imports_the_development_tooling():
    assert not {"devstack", "tests", *DEV_TOOLS} & _imports_of_production_code()


def _pins(name: str) -> dict[str, str]:
    lines = (PROJECT_ROOT / name).read_text().splitlines()
    return dict((canonicalize_name(name), version) for name, _, version in
                (line.partition("==") for line in lines if "==" in line))


def _with_dependencies(names: set[str]) -> set[str]:
    """The distributions and, recursively, what they require (extras aside), as installed here."""
    seen, todo = set(), list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def _imports_of_production_code() -> set[str]:
    """Top-level modules imported by the code the image runs."""
    modules = set()
    for path in (p for folder in ("include", "dags", "plugins") for p in (PROJECT_ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


def _third_party_imports() -> set[str]:
    return {m for m in _imports_of_production_code()
            if m not in sys.stdlib_module_names and m not in ("ticketflow", "airflow")}


def test_the_local_celery_stack_runs_on_the_same_airflow_settings_as_compose(compose, tmp_path):
    """`make run-celery` and docker compose read one file of shared settings; nothing overrides it on either side."""
    shared = shared_airflow_settings()
    assert {"AIRFLOW__CELERY__TASK_ACKS_LATE", "AIRFLOW__CELERY__WORKER_CONCURRENCY"} <= set(shared)
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        assert service["env_file"] == ["./config/airflow.env"], name
        assert not set(shared) & set(service["environment"]), f"{name} overrides a shared setting"

    local = LocalStack(tmp_path, Ports(), EmbeddedPostgres(tmp_path / "pg", 5432), "postgresql://u@h/app",
                       celery_workers=2)
    env = local.airflow_env()
    assert {key: env[key] for key in shared} == shared
    worker = compose["services"]["airflow-worker"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == worker["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert worker["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert _interpolated(worker["AIRFLOW__CELERY__RESULT_BACKEND"]).startswith("db+postgresql://")
    local_processes = {*AIRFLOW_COMPONENTS, "celery worker"}
    compose_processes = {str(compose["services"][name]["command"]) for name in AIRFLOW_SERVICES - {"airflow-init"}}
    assert local_processes == compose_processes


def test_redis_keeps_queued_tasks_across_a_restart_as_the_local_stack_does(compose):
    redis = compose["services"]["redis"]
    assert redis["command"] == ["redis-server", "--appendonly", "yes"]
    assert any(volume.endswith(":/data") for volume in redis["volumes"]) and "redis-data" in compose["volumes"]


def test_secrets_and_what_production_must_choose_have_no_default(compose):
    text = (PROJECT_ROOT / "docker-compose.yaml").read_text()
    uses = [(m.group(1), m.group(2)) for m in VARIABLE.finditer(text)]
    assert {name for name, operator in uses if operator == "?"} == REQUIRED
    assert not [name for name, operator in uses if name in REQUIRED and operator != "?"]


def test_every_ticketflow_setting_reaches_the_containers(compose):
    read = set(re.findall(r"TICKETFLOW_[A-Z_]+", (PROJECT_ROOT / "include/ticketflow/settings.py").read_text()))
    local_only = {"TICKETFLOW_DATABASE_URL", "TICKETFLOW_ROOT"}  # compose has its own database; ROOT is set
    for name in AIRFLOW_SERVICES:
        assert read - local_only <= set(compose["services"][name]["environment"]), name


def test_every_schedule_setting_reaches_the_containers(compose):
    """A DAG that takes its schedule from TICKETFLOW_SCHEDULE_<DAG_ID> (dagkit.schedule_for) gets it in compose."""
    variables = {f"TICKETFLOW_SCHEDULE_{dag_id.upper()}" for path in (PROJECT_ROOT / "dags").glob("*.py")
                 for dag_id in re.findall(r'schedule_for\("(\w+)"', path.read_text())}
    assert "TICKETFLOW_SCHEDULE_TDX_TICKET_QUEUE" in variables
    for name in AIRFLOW_SERVICES:
        environment = compose["services"][name]["environment"]
        assert variables <= set(environment), name
        assert {_interpolated(environment[variable]) for variable in variables} == {""}  # the DAG's default
