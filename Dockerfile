# The official Airflow image plus the smsc_hook package, installed so that its
# `apache_airflow_provider` entry point registers the `smsc` connection type.
FROM apache/airflow:3.3.2-python3.11

# Installing as the image's `airflow` user puts the package next to Airflow in ~/.local.
USER airflow

# What building the wheel reads: the metadata, the package and sql/ (which the package's
# sql symlink points at, so the migrations go into the installed package).
COPY --chown=airflow:0 pyproject.toml README.md LICENSE /tmp/smsc-provider/
COPY --chown=airflow:0 plugins/ /tmp/smsc-provider/plugins/
COPY --chown=airflow:0 sql/ /tmp/smsc-provider/sql/

# --no-deps: every runtime dependency (providers-postgres, psycopg2, requests, SQLAlchemy)
# already ships in the official image, pinned by its constraints; pip must not move them.
RUN pip install --no-cache-dir --no-deps /tmp/smsc-provider \
    && rm -rf /tmp/smsc-provider
