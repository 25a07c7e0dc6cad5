"""What the DAG costs before any call: the DAG file's parse time and smsc_hook's import time.

The dag-processor re-parses the file every 30 s and every task process parses it once
before it runs, so both are paid continuously and once per window. Each number is the
median of fresh interpreters (module caches empty, like a new task process).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPEATS = 5

# After `import airflow.sdk` (every parsing process has it), time the first parse of the
# file, which imports smsc_hook's modules, and a second one with them cached.
_PARSE = """
import json, runpy, sys, time
import airflow.sdk
t0 = time.perf_counter(); runpy.run_path(sys.argv[1]); t1 = time.perf_counter()
runpy.run_path(sys.argv[1]); t2 = time.perf_counter()
print(json.dumps({"cold": t1 - t0, "warm": t2 - t1}))
"""
_IMPORT = """
import json, time
t0 = time.perf_counter(); import smsc_hook; t1 = time.perf_counter()
import airflow.sdk
t2 = time.perf_counter(); import smsc_hook.airflow.operators; t3 = time.perf_counter()
print(json.dumps({"package": t1 - t0, "operator": t3 - t2}))
"""


@dataclass(frozen=True)
class StartupCosts:
    """Medians in seconds."""

    parse_cold: float
    parse_warm: float
    import_package: float
    import_operator: float
    #: Self time of smsc_hook's own modules in that import (the rest is requests,
    #: SQLAlchemy's dialect and psycopg2, which a task would load anyway).
    import_own_modules: float


def _run(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env=dict(env), capture_output=True, text=True, check=True
    )


def _median_of(env: Mapping[str, str], code: str, *args: str) -> dict[str, float]:
    runs = [json.loads(_run(env, "-c", code, *args).stdout) for _ in range(REPEATS)]
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def own_import_self_time(env: Mapping[str, str]) -> float:
    """Sum of ``-X importtime`` self times of ``smsc_hook.*`` for the operator's import."""
    totals = []
    for _ in range(REPEATS):
        code = "import airflow.sdk, smsc_hook.airflow.operators"
        err = _run(env, "-X", "importtime", "-c", code).stderr
        micros = 0
        for line in err.splitlines():
            fields = [f.strip() for f in line.removeprefix("import time:").split("|")]
            if len(fields) == 3 and fields[2].startswith("smsc_hook"):
                micros += int(fields[0])
        totals.append(micros / 1e6)
    return statistics.median(totals)


def measure(env: Mapping[str, str], dag_file: Path) -> StartupCosts:
    """Parse and import costs in ``env`` (an Airflow stack's environment)."""
    parse = _median_of(env, _PARSE, str(dag_file))
    imports = _median_of(env, _IMPORT)
    return StartupCosts(
        parse_cold=parse["cold"],
        parse_warm=parse["warm"],
        import_package=imports["package"],
        import_operator=imports["operator"],
        import_own_modules=own_import_self_time(env),
    )
