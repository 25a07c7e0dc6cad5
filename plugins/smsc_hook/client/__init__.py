"""The SMSC client: HTTP (hook, transport), reply parsing, connection settings, errors, rows.

Knows SMSC's protocol and nothing of Airflow's scheduling or of SQL; the layers above
(``warehouse``, ``airflow``, ``checks``) import from here, never the other way round.
"""
