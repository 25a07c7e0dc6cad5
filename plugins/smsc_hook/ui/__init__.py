"""The "SMSC" operations page: a read-only FastAPI app the plugin mounts in the api-server.

``queries`` reads the warehouse (the only SQL), ``metadata`` reads Airflow's own database
(backfills, pools), ``status`` turns both into what the page says (pure), ``snapshot``
assembles one account's panels, ``render`` writes the HTML and ``app`` serves it behind
Airflow's authentication. Nothing here calls SMSC.
"""
