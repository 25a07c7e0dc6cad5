"""``python -m devtools.benchmark``: how close a real backfill gets to SMSC's rate limit.

SMSC allows 3 statistics calls per 60 s, so a day per 20 s is the physical limit. The
benchmark backfills the same days in phases on one machine, each with a fresh simulator
enforcing the real limit and a real Airflow scheduler (LocalExecutor): once with
``smsc_daily_stats``, then with a naive baseline DAG (``naive_dags/``) at Airflow's default
backfill concurrency and at ``--max-active-runs 3``. It reports throughput, efficiency
against the limit, rejections, retries, per-window overhead and peak task memory, plus the
DAG file's parse time and the provider's import time, and writes them to
``docs/benchmarks.md``. It measures; it does not fail a build.
"""
