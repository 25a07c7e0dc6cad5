# The official Airflow image plus the smsc_hook package, installed so that its
# `apache_airflow_provider` entry point registers the `smsc` connection type.
FROM apache/airflow:3.3.2-python3.11

# Installing as the image's `airflow` user puts the package next to Airflow in ~/.local.
USER airflow

COPY --chown=airflow:0 pyproject.toml /tmp/smsc-provider/pyproject.toml
COPY --chown=airflow:0 plugins/ /tmp/smsc-provider/plugins/

# --no-deps: every runtime dependency (providers-postgres, psycopg2, requests, SQLAlchemy)
# already ships in the official image, pinned by its constraints; pip must not move them.
RUN pip install --no-cache-dir --no-deps /tmp/smsc-provider \
    && rm -rf /tmp/smsc-provider
