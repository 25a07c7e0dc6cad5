"""The wheel is the product: built from a clean copy, installed into a fresh virtualenv.

No ``plugins/``, no ``sql/`` and no repository on ``sys.path``: the provider, its connection
type, the ``airflow smsc`` commands, the migrations and the timetable plugin must all come
from the installed wheel, and the copied DAG file must load a day from the simulator.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from devtools import postgres
from devtools.simulator_process import RunningSimulator, running_simulator
from tests.conftest import SIM_TODAY
from tests.support import DAG_ID, PASSWORD, airflow_connections, query, stored_rows, truth_rows

REPO = Path(__file__).resolve().parents[1]
DAY = date(2026, 11, 5)
MIGRATIONS = sorted(p.name for p in (REPO / "sql").glob("*.sql"))


def _run(args: list[str], *, timeout: float, **kwargs: object) -> str:
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    assert result.returncode == 0, (
        f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-3000:]}"
    )
    return result.stdout


def _clean_copy(target: Path) -> Path:
    """The files git would check out (tracked, or new and not ignored), symlinks as such."""
    listed = _run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        timeout=60,
        cwd=REPO,
    )
    for name in filter(None, listed.split("\0")):
        source, copy = REPO / name, target / name
        if not (source.is_symlink() or source.exists()):
            continue  # deleted in the working tree
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            copy.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, copy)
    return target


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel`` of a clean copy of the repository."""
    started = time.monotonic()
    source = _clean_copy(tmp_path_factory.mktemp("checkout"))
    dist = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), "."],
        timeout=300,
        cwd=source,
    )
    (built,) = dist.glob("*.whl")
    print(f"\nwheel: built {built.name} in {time.monotonic() - started:.1f} s")
    return built


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh virtualenv: the pinned runtime (pip's cache), then the wheel, --no-deps."""
    started = time.monotonic()
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    pip.append("--disable-pip-version-check")
    _run([*pip, "-r", str(REPO / "requirements.txt")], timeout=600, cwd=venv)
    _run([*pip, "--no-deps", str(wheel)], timeout=120, cwd=venv)
    print(f"\nwheel: virtualenv ready in {time.monotonic() - started:.1f} s")
    return venv


@dataclass
class Deployment:
    """An Airflow home using the wheel's virtualenv, the copied DAG file, no repository."""

    venv: Path
    home: Path
    env: dict[str, str]
    warehouse_url: str
    simulator: RunningSimulator

    def run(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> str:
        """``ARGS[0]`` from the virtualenv's bin/, in this deployment's environment."""
        command = [str(self.venv / "bin" / args[0]), *args[1:]]
        return _run(command, timeout=timeout, env=env or self.env, cwd=self.home)


def _environment(home: Path, metadata_url: str, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "SMSC_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Europe/Moscow",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "2",
            "SMSC_TIMEZONE": "Europe/Moscow",
            **extra,
        }
    )
    return env


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, wheel_venv: Path, pg_server_url: str
) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("wheel-airflow")
    (home / "dags").mkdir()
    (home / "plugins").mkdir()
    # What a user does: copy the one DAG file as it is.
    shutil.copy2(REPO / "dags" / "smsc_daily_stats.py", home / "dags")
    with (
        postgres.throwaway_database(pg_server_url, prefix="airflow_meta") as metadata,
        postgres.throwaway_database(pg_server_url) as warehouse,
        running_simulator("--quiet", "--today", SIM_TODAY.isoformat()) as sim,
    ):
        env = _environment(home, metadata)
        for conn_id, conn in airflow_connections(sim.url, warehouse).items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
        deployed = Deployment(wheel_venv, home, env, warehouse, sim)
        deployed.run("airflow", "db", "migrate")
        yield deployed


@pytest.fixture(scope="module")
def bootstrapped(deployment: Deployment) -> str:
    """``airflow smsc bootstrap`` (the provider's CLI) with the wheel's migrations."""
    return deployment.run("airflow", "smsc", "bootstrap", "--no-api-call")


# --- metadata and the wheel's contents (fast) ----------------------------------------------


def test_version_has_one_source() -> None:
    import smsc_hook
    from smsc_hook.airflow.provider_info import get_provider_info

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "smsc_hook.__version__"}
    assert get_provider_info()["versions"] == [smsc_hook.__version__]
    assert f"## {smsc_hook.__version__}" in (REPO / "CHANGELOG.md").read_text(encoding="utf-8")


def test_the_package_sql_is_the_repository_sql() -> None:
    """One committed copy: the package's sql/ is a symlink to sql/, and the runner uses it."""
    from smsc_hook.warehouse.migrations import default_sql_dir

    link = REPO / "plugins" / "smsc_hook" / "warehouse" / "sql"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "sql").resolve()
    assert default_sql_dir().resolve() == (REPO / "sql").resolve()


@pytest.mark.airflow
def test_wheel_holds_the_package_and_its_migrations(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    print("\n" + "\n".join(names))
    sql = "smsc_hook/warehouse/sql/"
    assert sorted(n.removeprefix(sql) for n in names if "/sql/" in n) == MIGRATIONS
    package = REPO / "plugins"
    modules = {str(p.relative_to(package)) for p in (package / "smsc_hook").rglob("*.py")}
    assert len(modules) > 20
    assert modules | {"smsc_hook/py.typed"} <= set(names), "every module of every sub-package"
    assert not [n for n in names if n.startswith(("plugins/", "dags/", "tests/", "sql/"))]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Classifier: Framework :: Apache Airflow :: Provider" in text
    assert "Requires-Dist: apache-airflow<4,>=3.3" in text
    assert "License-Expression: Apache-2.0" in text
    entry_points = zipfile.ZipFile(wheel).read(metadata.replace("METADATA", "entry_points.txt"))
    assert b"smsc = smsc_hook.airflow.plugin:SmscPlugin" in entry_points


# --- the installed wheel under Airflow -----------------------------------------------------


@pytest.mark.airflow
def test_nothing_comes_from_the_repository(deployment: Deployment) -> None:
    out = deployment.run(
        "python",
        "-c",
        "import json, sys, smsc_hook\n"
        "from smsc_hook.warehouse.migrations import default_sql_dir\n"
        "print(json.dumps([smsc_hook.__file__, str(default_sql_dir()), sys.path]))",
    )
    package, sql_dir, path = json.loads(out)
    assert package.startswith(str(deployment.venv))
    assert sql_dir.startswith(str(deployment.venv))
    assert not [p for p in path if p and Path(p).resolve().is_relative_to(REPO)]


@pytest.mark.airflow
def test_providers_list_shows_the_provider_and_its_connection_type(
    deployment: Deployment,
) -> None:
    from smsc_hook import __version__

    providers = json.loads(deployment.run("airflow", "providers", "list", "-o", "json"))
    ours = [p for p in providers if p["package_name"] == "smsc-airflow-provider"]
    assert [p["version"] for p in ours] == [__version__]
    hooks = json.loads(deployment.run("airflow", "providers", "hooks", "-o", "json"))
    assert [(h["class"], h["package_name"]) for h in hooks if h["connection_type"] == "smsc"] == [
        ("smsc_hook.client.hook.SmscHook", "smsc-airflow-provider")
    ]


@pytest.mark.airflow
def test_airflow_smsc_bootstrap_applies_the_wheels_migrations(
    deployment: Deployment, bootstrapped: str
) -> None:
    assert f"applied {', '.join(MIGRATIONS)}" in bootstrapped
    applied = query(deployment.warehouse_url, "SELECT name FROM smsc.schema_migrations")
    assert sorted(name for (name,) in applied) == MIGRATIONS
    # The python -m form still works, and finds nothing left to do.
    again = deployment.run("python", "-m", "smsc_hook.bootstrap", "--no-api-call")
    assert "schema up to date" in again


@pytest.mark.airflow
def test_dags_test_of_the_copied_dag_file_loads_a_day(
    deployment: Deployment, bootstrapped: str
) -> None:
    output = deployment.run("airflow", "dags", "test", DAG_ID, DAY.isoformat(), timeout=600)
    expected = truth_rows(deployment.simulator.control, DAY)
    assert expected, "the simulator should have rows for the day"
    assert stored_rows(deployment.warehouse_url, DAY) == expected
    assert PASSWORD not in output
    # The provider's CLI reads the warehouse that load wrote: the loaded day is no gap (the
    # days after it, up to yesterday, are).
    gaps = deployment.run("airflow", "smsc", "gaps", "--dry-run")
    assert gaps.startswith("gaps: demo/main"), gaps
    assert DAY.isoformat() not in gaps


_PLUGINS = (
    "import json\n"
    "from airflow import plugins_manager\n"
    "plugins = [(p.name, str(p.source)) for p in plugins_manager._get_plugins()[0]]\n"
    "print(json.dumps([plugins, plugins_manager.get_import_errors()]))"
)


@pytest.mark.airflow
@pytest.mark.parametrize("plugins_folder", ["empty", "repository-plugins"])
def test_the_timetable_is_registered_once(
    deployment: Deployment, tmp_path: Path, plugins_folder: str
) -> None:
    """By the entry point; a deployment that also has our plugins/ folder gets no second
    registration and no plugin import error."""
    env = dict(deployment.env)
    if plugins_folder == "repository-plugins":
        copy = shutil.copytree(REPO / "plugins", tmp_path / "plugins", symlinks=True)
        env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(copy)
    listed = json.loads(deployment.run("airflow", "plugins", "-o", "json", env=env))
    assert [p["timetables"] for p in listed if p["name"] == "smsc"] == [
        [
            "smsc_hook.airflow.timetable.SmscDailyTimetable",
            "smsc_hook.timetable.SmscDailyTimetable",
        ]
    ]
    # The last line: Airflow logs to stdout too (a pathspec deprecation, reading .airflowignore).
    out = deployment.run("python", "-c", _PLUGINS, env=env)
    plugins, errors = json.loads(out.strip().splitlines()[-1])
    smsc = [source for name, source in plugins if name == "smsc"]
    assert len(smsc) == 1, smsc
    assert "EntryPoint" in smsc[0], smsc
    assert errors == {}
