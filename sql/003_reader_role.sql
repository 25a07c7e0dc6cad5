-- Read-only role for BI: USAGE on the schema and SELECT on the views, nothing on the tables.
-- A BI login is then one statement: CREATE ROLE bi LOGIN PASSWORD '...' IN ROLE smsc_reader;

-- Roles are cluster-wide: several databases on one server may run this at the same moment.
-- The loser of that race gets duplicate_object (role committed) or unique_violation (both
-- inserting into pg_authid); either way the role exists, which is all this step needs.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'smsc_reader') THEN
        CREATE ROLE smsc_reader NOLOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN
        RAISE NOTICE 'role smsc_reader was created concurrently; using it';
END
$$;

GRANT USAGE ON SCHEMA smsc TO smsc_reader;
GRANT SELECT ON smsc.daily_stats, smsc.monthly_stats TO smsc_reader;
