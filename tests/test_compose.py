"""The docker compose deployment: compose file, Dockerfile and .env.example, read without Docker."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"

AIRFLOW_BASE_IMAGE = "apache/airflow:3.3.2-python3.11"
INIT = "airflow-init"
#: Airflow service → the command it runs.
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
    INIT: "smsc_hook.bootstrap",
}
LONG_RUNNING = sorted({*AIRFLOW_SERVICES, "postgres", "redis"} - {INIT})
ALL_SERVICES = sorted({*AIRFLOW_SERVICES, "postgres", "redis"})
#: Host directory → where the Airflow containers see it.
CODE_MOUNTS = {
    "dags": "/opt/airflow/dags",
    "plugins": "/opt/airflow/plugins",
    "sql": "/opt/airflow/sql",
}

# Compose's interpolation syntax; "$$" is an escaped "$" that reaches the container as is.
_REFERENCE = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)
_REQUIRED_REFERENCE = re.compile(r"\$\{[A-Za-z_]\w*:\?[^}]+\}")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|(^|_)KEY$|APIKEY")
# What a committed credential tends to look like: a Fernet key, or a long hex/base64 run.
_SECRET_LOOKING = re.compile(r"[A-Za-z0-9_-]{43}=|\b[0-9a-f]{32,}\b|[A-Za-z0-9+/]{40,}={0,2}")


class Reference(NamedTuple):
    name: str
    op: str  # "", "-", ":-", "?", ":?", "+", ":+"
    arg: str
    where: str


def _strings(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every string value in the parsed compose file, with a dotted path to it."""
    if isinstance(node, str):
        yield where, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{where}[{i}]")


def _references(node: Any) -> list[Reference]:
    found = []
    for where, value in _strings(node):
        for match in _REFERENCE.finditer(value):
            if match.group(0) == "$$":
                continue
            name = match["braced"] or match["bare"]
            found.append(Reference(name, match["op"] or "", match["arg"] or "", where))
    return found


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def _healthcheck(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test", "")
    return " ".join(test) if isinstance(test, list) else str(test)


def _image_tag(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → host path of the service's bind mounts (short syntax)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = source
    return mounts


def _with_dummy_values(value: str) -> str:
    """The value with every ${...} replaced by a placeholder, to parse its structure."""
    return _REFERENCE.sub(lambda m: "$" if m.group(0) == "$$" else "placeholder", value)


def _parse_env_file(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f".env.example: {line!r} is not NAME=value"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        assert name not in values, f".env.example sets {name} twice"
        values[name] = value
    return values


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def common_env(compose: dict[str, Any]) -> dict[str, str]:
    return _environment(compose["x-airflow-common"])


@pytest.fixture(scope="module")
def references(compose: dict[str, Any]) -> list[Reference]:
    return _references(compose)


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return _parse_env_file(ENV_EXAMPLE.read_text(encoding="utf-8"))


# --- services and images -------------------------------------------------------------------


def test_expected_services_exist(services: dict[str, Any]) -> None:
    missing = sorted(set(ALL_SERVICES) - set(services))
    assert not missing, f"docker-compose.yaml lacks services {missing}"


@pytest.mark.parametrize("name", ALL_SERVICES)
def test_image_is_pinned_to_a_version(services: dict[str, Any], name: str) -> None:
    image = services[name].get("image", "")
    tag = _image_tag(image)
    assert tag, f"{name}: image {image!r} has no tag, so it floats to 'latest'"
    assert "@sha256:" in image or re.search(r"\d+\.\d+", tag), (
        f"{name}: image tag {tag!r} is not a version number (e.g. 16.10), so it floats"
    )


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_airflow_services_share_the_image_built_from_the_dockerfile(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    build = service.get("build") or {}
    assert (build.get("context"), build.get("dockerfile")) == (".", "Dockerfile"), (
        f"{name}: must be built from ./Dockerfile, found build={build!r}"
    )
    images = {services[s].get("image") for s in AIRFLOW_SERVICES}
    assert len(images) == 1, f"Airflow services must share one image, found {sorted(images)}"


def test_built_image_tag_names_package_and_airflow_versions(services: dict[str, Any]) -> None:
    from smsc_hook import __version__

    tag = _image_tag(services[INIT]["image"])
    airflow_version = AIRFLOW_BASE_IMAGE.split(":")[1].split("-")[0]
    why = "so a release builds a new image instead of reusing a stale one"
    assert tag.startswith(__version__), (
        f"image tag {tag!r} should start with the package version {__version__}, {why}"
    )
    assert airflow_version in tag, f"image tag {tag!r} should name Airflow {airflow_version}, {why}"


def test_dockerfile_starts_from_the_pinned_airflow_image() -> None:
    froms = [
        line.split()[1]
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.upper().startswith("FROM ")
    ]
    assert froms == [AIRFLOW_BASE_IMAGE], f"Dockerfile FROM {froms}, expected {AIRFLOW_BASE_IMAGE}"
    pins = (REPO / "requirements.txt").read_text(encoding="utf-8")
    pinned = re.search(r"^apache-airflow==(\S+)$", pins, re.MULTILINE)
    assert pinned, "requirements.txt does not pin apache-airflow"
    assert f":{pinned[1]}-" in AIRFLOW_BASE_IMAGE, (
        f"the image runs Airflow {AIRFLOW_BASE_IMAGE}, the tests run {pinned[1]}"
    )


def test_dockerfile_installs_the_package_for_its_provider_entry_point() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert any(re.match(r"COPY\b.*\bpyproject\.toml\b", line) for line in lines), (
        "Dockerfile must COPY pyproject.toml"
    )
    for copied in ("plugins", "sql"):
        assert any(re.match(rf"COPY\b.*\b{copied}/?\s", line) for line in lines), (
            f"Dockerfile must COPY {copied}/ (sql/: the migrations the wheel carries)"
        )
    for copied in ("README.md", "LICENSE"):  # the metadata's readme and licence file
        assert any(re.match(rf"COPY\b.*\b{copied}\b", line) for line in lines), copied
    run = " ".join(line for line in lines if line.startswith("RUN"))
    for flag in ("--no-cache-dir", "--no-deps"):
        assert re.search(rf"pip install\b.*{flag}", run), f"Dockerfile must `pip install {flag}`"
    users = [line.split()[1] for line in lines if line.startswith("USER")]
    assert users[-1:] == ["airflow"], "pip must run as the image's airflow user"

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "apache_airflow_provider" in project["project"].get("entry-points", {}), (
        "pyproject.toml must declare the apache_airflow_provider entry point"
    )
    assert project["tool"]["setuptools"]["package-dir"] == {"": "plugins"}, (
        "the Dockerfile copies plugins/ because the package lives there (package-dir)"
    )


# --- Airflow configuration -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_celery_executor_with_redis_broker(services: dict[str, Any], name: str) -> None:
    env = _environment(services[name])
    assert env.get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor", (
        f"{name}: executor is {env.get('AIRFLOW__CORE__EXECUTOR')!r}, expected CeleryExecutor"
    )
    broker = urlsplit(env.get("AIRFLOW__CELERY__BROKER_URL", ""))
    assert (broker.scheme, broker.hostname) == ("redis", "redis"), (
        f"{name}: Celery broker {broker.geturl()!r} is not the redis service"
    )
    backend = urlsplit(_with_dummy_values(env.get("AIRFLOW__CELERY__RESULT_BACKEND", "")))
    assert (backend.scheme, backend.hostname) == ("db+postgresql", "postgres"), (
        f"{name}: Celery result backend {backend.geturl()!r} is not the postgres service"
    )


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("AIRFLOW__CORE__LOAD_EXAMPLES", "false"),
        ("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://airflow-apiserver:8080/execution/"),
        ("SMSC_SQL_DIR", CODE_MOUNTS["sql"]),
    ],
)
def test_common_setting(common_env: dict[str, str], variable: str, expected: str) -> None:
    assert common_env.get(variable) == expected, (
        f"x-airflow-common sets {variable}={common_env.get(variable)!r}, expected {expected!r}"
    )


def test_required_airflow_secrets_are_configured(common_env: dict[str, str]) -> None:
    for variable in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY"):
        assert _REQUIRED_REFERENCE.fullmatch(common_env.get(variable, "")), (
            f"{variable} must be shared by every component and come from .env as ${{VAR:?...}}"
        )
    assert common_env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"), (
        "no SimpleAuthManager user is configured"
    )


#: The services that sign (scheduler: each workload's token) or verify (api-server) the
#: tasks' Execution API tokens. The Celery worker gets the token with the workload; the
#: dag-processor and triggerer use an in-process API without tokens; the init signs nothing.
JWT_SERVICES = {"airflow-apiserver", "airflow-scheduler"}


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_jwt_secret_only_where_task_tokens_are_signed_or_verified(
    services: dict[str, Any], common_env: dict[str, str], name: str
) -> None:
    assert "AIRFLOW__API_AUTH__JWT_SECRET" not in common_env, "not for every service"
    secret = _environment(services[name]).get("AIRFLOW__API_AUTH__JWT_SECRET")
    if name in JWT_SERVICES:
        assert secret, f"{name} signs or verifies task tokens: it needs the JWT secret"
        assert _REQUIRED_REFERENCE.fullmatch(secret), (
            f"{name} must get the JWT secret from .env as ${{AIRFLOW_JWT_SECRET:?...}}"
        )
        assert "AIRFLOW_JWT_SECRET" in secret
    else:
        assert secret is None, f"{name} neither signs nor verifies task tokens"


def test_default_timezone_is_the_account_timezone(common_env: dict[str, str]) -> None:
    assert common_env["AIRFLOW__CORE__DEFAULT_TIMEZONE"] == common_env["SMSC_TIMEZONE"], (
        "Airflow's default time zone must follow SMSC_TIMEZONE: backfill dates are read in it"
    )


def test_pipeline_settings_pass_through_with_the_code_defaults(
    common_env: dict[str, str],
) -> None:
    from smsc_hook.airflow import settings, windows
    from smsc_hook.warehouse import ledger as pacing

    expected = {
        "SMSC_TIMEZONE": settings.DEFAULT_TIMEZONE,
        "SMSC_SCHEDULE_TIME": settings.DEFAULT_RUN_AT,
        "SMSC_START_DATE": settings.DEFAULT_START_DATE.isoformat(),
        "SMSC_LOOKBACK_DAYS": str(windows.DEFAULT_LOOKBACK_DAYS),
        "SMSC_RATE_LIMIT": str(pacing.DEFAULT_LIMIT),
        "SMSC_RATE_WINDOW_SECONDS": str(int(pacing.DEFAULT_WINDOW.total_seconds())),
        "SMSC_CATCHUP": str(settings.PipelineSettings().catchup).lower(),
    }
    for variable, default in expected.items():
        assert common_env.get(variable) == f"${{{variable}:-{default}}}", (
            f"x-airflow-common should set {variable}: ${{{variable}:-{default}}} (the code's "
            f"default), found {common_env.get(variable)!r}"
        )


def test_connections(common_env: dict[str, str]) -> None:
    smsc = json.loads(common_env["AIRFLOW_CONN_SMSC_DEFAULT"])
    assert (smsc["conn_type"], smsc["host"]) == ("smsc", "smsc.ru"), f"smsc_default: {smsc}"
    assert smsc["login"].startswith("${SMSC_LOGIN:?"), (
        "smsc_default login must come from SMSC_LOGIN"
    )
    assert smsc["password"].startswith("${SMSC_PASSWORD:?"), (
        "smsc_default password must come from SMSC_PASSWORD"
    )
    warehouse = json.loads(common_env["AIRFLOW_CONN_SMSC_WAREHOUSE"])
    assert (warehouse["conn_type"], warehouse["host"]) == ("postgres", "postgres"), (
        f"smsc_warehouse must be a postgres connection to the postgres service: {warehouse}"
    )


def test_metadata_and_warehouse_are_separate_databases(
    compose: dict[str, Any], common_env: dict[str, str], services: dict[str, Any]
) -> None:
    metadata = urlsplit(_with_dummy_values(common_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]))
    warehouse = json.loads(common_env["AIRFLOW_CONN_SMSC_WAREHOUSE"])
    metadata_db = metadata.path.lstrip("/")
    assert metadata.hostname == warehouse["host"] == "postgres", "both live on the postgres service"
    assert metadata_db, "the metadata connection names no database"
    assert metadata_db != warehouse["schema"], (
        f"metadata database {metadata_db!r} and warehouse database {warehouse['schema']!r} "
        "must differ"
    )
    assert metadata.username != warehouse["login"], "metadata and warehouse need separate roles"

    initdb = {
        target: source
        for mount in services["postgres"].get("configs", [])
        for target, source in [(mount["target"], mount["source"])]
    }
    scripts = [
        compose["configs"][source]["content"]
        for target, source in initdb.items()
        if target.startswith("/docker-entrypoint-initdb.d/") and target.endswith((".sh", ".sql"))
    ]
    assert scripts, "postgres mounts no init script into /docker-entrypoint-initdb.d/"
    script = "\n".join(scripts)
    owners = {metadata_db: metadata.username, warehouse["schema"]: warehouse["login"]}
    for database, owner in owners.items():
        assert f"CREATE DATABASE {database} OWNER {owner};" in script, (
            f"the postgres init script must create database {database!r} owned by {owner!r}"
        )


# --- startup order, health, restarts -------------------------------------------------------


def test_init_migrates_then_bootstraps(services: dict[str, Any]) -> None:
    command = _command(services[INIT])
    assert "airflow db migrate" in command, f"{INIT} does not run `airflow db migrate`"
    assert "python -m smsc_hook.bootstrap" in command, f"{INIT} does not run the bootstrap"
    assert command.index("airflow db migrate") < command.index("smsc_hook.bootstrap"), (
        f"{INIT} must migrate the metadata database before the bootstrap uses it"
    )
    assert "set -e" in command or "&&" in command, (
        f"{INIT} must stop when `airflow db migrate` fails (set -e or &&)"
    )
    assert services[INIT].get("restart", "no") == "no", f"{INIT} runs once; it must not restart"


def test_init_waits_for_healthy_postgres_and_redis(services: dict[str, Any]) -> None:
    depends_on = services[INIT].get("depends_on") or {}
    for dependency in ("postgres", "redis"):
        condition = (depends_on.get(dependency) or {}).get("condition")
        assert condition == "service_healthy", (
            f"{INIT} must wait for {dependency} to be healthy, found condition {condition!r}"
        )


@pytest.mark.parametrize("name", sorted(set(AIRFLOW_SERVICES) - {INIT}))
def test_airflow_service_waits_for_init(services: dict[str, Any], name: str) -> None:
    condition = ((services[name].get("depends_on") or {}).get(INIT) or {}).get("condition")
    assert condition == "service_completed_successfully", (
        f"{name} must wait for {INIT} to complete successfully, found condition {condition!r}"
    )


@pytest.mark.parametrize(("name", "command"), sorted(AIRFLOW_SERVICES.items()))
def test_airflow_service_command(services: dict[str, Any], name: str, command: str) -> None:
    assert command in _command(services[name]), (
        f"{name} should run {command!r}, runs {_command(services[name])!r}"
    )


@pytest.mark.parametrize(
    ("name", "probe"),
    [
        ("postgres", "pg_isready"),
        ("redis", "redis-cli ping"),
        ("airflow-apiserver", "http://localhost:8080/api/v2/monitor/health"),
        ("airflow-scheduler", "airflow jobs check --job-type SchedulerJob --local"),
        ("airflow-dag-processor", "airflow jobs check --job-type DagProcessorJob --local"),
        ("airflow-triggerer", "airflow jobs check --job-type TriggererJob --local"),
        ("airflow-worker", "inspect ping"),
    ],
)
def test_long_running_service_is_health_checked_and_restarted(
    services: dict[str, Any], name: str, probe: str
) -> None:
    assert name in LONG_RUNNING
    service = services[name]
    healthcheck = _healthcheck(service)
    assert probe in healthcheck, f"{name}: healthcheck should use {probe!r}, found {healthcheck!r}"
    assert not (service.get("healthcheck") or {}).get("disable"), f"{name}: healthcheck disabled"
    assert service.get("restart") == "unless-stopped", (
        f"{name}: restart is {service.get('restart')!r}, expected unless-stopped"
    )


@pytest.mark.parametrize(("host_dir", "target"), sorted(CODE_MOUNTS.items()))
def test_code_is_mounted_from_the_repository(
    services: dict[str, Any], host_dir: str, target: str
) -> None:
    assert (REPO / host_dir).is_dir(), f"{host_dir}/ is mounted but missing from the repository"
    for name in AIRFLOW_SERVICES:
        source = _mounts(services[name]).get(target)
        assert source is not None, f"{name} does not mount ./{host_dir} at {target}"
        assert (REPO / source).resolve() == (REPO / host_dir).resolve(), (
            f"{name} mounts {source} at {target}, expected ./{host_dir}"
        )


# --- secrets and .env.example --------------------------------------------------------------


def test_secrets_come_only_from_required_variables(compose: dict[str, Any]) -> None:
    problems = []
    envs = {"x-airflow-common": _environment(compose["x-airflow-common"])}
    envs |= {name: _environment(service) for name, service in compose["services"].items()}
    for owner, env in envs.items():
        for key, value in env.items():
            secret_key = _SECRET_NAME.search(key) and not key.endswith("_FILE")
            if secret_key and not _REQUIRED_REFERENCE.fullmatch(value):
                problems.append(f"{owner}: {key} is not a ${{VAR:?message}} reference")
            if "://" in value:
                password = re.match(r"[\w+.-]+://[^:@/]*:(\$\{[^}]*\}|[^@]*)@", value)
                if password and not _REQUIRED_REFERENCE.fullmatch(password[1]):
                    problems.append(f"{owner}: {key} has a literal password in its URL")
            if key.startswith("AIRFLOW_CONN_") and value.lstrip().startswith("{"):
                secret = json.loads(value).get("password", "")
                if not _REQUIRED_REFERENCE.fullmatch(secret):
                    problems.append(f"{owner}: {key} password is not a ${{VAR:?message}} reference")
    for where, value in _strings(compose):
        if _SECRET_LOOKING.search(_REFERENCE.sub("", value)):
            problems.append(f"{where}: looks like a literal secret")
    assert not problems, "secrets in docker-compose.yaml:\n" + "\n".join(problems)


def test_secret_variables_have_no_defaults(references: list[Reference]) -> None:
    defaulted = sorted(
        {
            f"{r.name} at {r.where}"
            for r in references
            if _SECRET_NAME.search(r.name) and r.op != ":?"
        }
    )
    assert not defaulted, (
        f"secrets must be required (${{VAR:?message}}), not defaulted: {defaulted}"
    )


def test_every_compose_variable_is_in_env_example_and_vice_versa(
    references: list[Reference], env_example: dict[str, str]
) -> None:
    used = {r.name for r in references}
    undocumented = sorted(used - set(env_example))
    unused = sorted(set(env_example) - used)
    assert not undocumented, (
        f"used in docker-compose.yaml, missing from .env.example: {undocumented}"
    )
    assert not unused, f"in .env.example, not used by docker-compose.yaml: {unused}"


def test_env_example_shows_the_compose_defaults(
    references: list[Reference], env_example: dict[str, str]
) -> None:
    defaults: dict[str, set[str]] = {}
    for r in references:
        if r.op in ("-", ":-"):
            defaults.setdefault(r.name, set()).add(r.arg)
    for name, values in sorted(defaults.items()):
        assert len(values) == 1, f"docker-compose.yaml gives {name} different defaults: {values}"
        assert env_example.get(name) == next(iter(values)), (
            f".env.example sets {name}={env_example.get(name)!r}, "
            f"docker-compose.yaml defaults it to {next(iter(values))!r}"
        )


def test_env_example_holds_no_secret(env_example: dict[str, str]) -> None:
    filled = sorted(n for n, v in env_example.items() if _SECRET_NAME.search(n) and v)
    assert not filled, f".env.example must leave secrets empty, but fills {filled}"
    looking = sorted(n for n, v in env_example.items() if _SECRET_LOOKING.search(v))
    assert not looking, f".env.example values look like real secrets: {looking}"


def test_env_example_explains_every_variable() -> None:
    paragraphs = re.split(r"\n\s*\n", ENV_EXAMPLE.read_text(encoding="utf-8"))
    unexplained = [
        line.split("=", 1)[0]
        for paragraph in paragraphs
        if not any(line.lstrip().startswith("#") for line in paragraph.splitlines())
        for line in paragraph.splitlines()
        if "=" in line
    ]
    assert not unexplained, f".env.example has no comment for {unexplained}"


# --- the real parser, where it is installed ------------------------------------------------


def _compose_command() -> list[str] | None:
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for candidate in candidates:
        version = subprocess.run(
            [*candidate, "version", "--short"], capture_output=True, text=True, check=False
        )
        # Compose v1 cannot read this file (inline configs need v2.23.1+).
        if version.returncode == 0 and not version.stdout.strip().lstrip("v").startswith("1."):
            return candidate
    return None


def test_docker_compose_accepts_the_file(
    tmp_path: Path, references: list[Reference], env_example: dict[str, str]
) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("no Docker Compose v2 here (`docker compose` / `docker-compose`)")
    env_file = tmp_path / "env"
    env_file.write_text(
        "".join(f"{name}={value or 'placeholder'}\n" for name, value in env_example.items()),
        encoding="utf-8",
    )
    # Variables from the shell would override the env file; keep the check reproducible.
    env = {k: v for k, v in os.environ.items() if k not in {r.name for r in references}}
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, (
        f"`{' '.join(command)} config` rejects the file:\n{result.stderr}"
    )
