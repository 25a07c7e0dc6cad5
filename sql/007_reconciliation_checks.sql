-- One row per reconciliation check of a month (not per login), so that a month with days never
-- loaded can be recorded as 'incomplete' without asking SMSC, and the status view shows the
-- latest check of each month whatever it found.

CREATE TABLE smsc.reconciliation_check (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account         text        NOT NULL CHECK (account <> ''),
    series          text        NOT NULL CHECK (series IN ('main', 'balance2')),
    month           date        NOT NULL CHECK (extract(day FROM month) = 1),
    attempt         smallint    NOT NULL CHECK (attempt IN (1, 2)),
    status          text        NOT NULL CHECK (status IN ('incomplete', 'matched', 'differs')),
    missing_days    date[]      NOT NULL DEFAULT '{}',
    checked_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((status = 'incomplete') = (cardinality(missing_days) > 0))
);
CREATE INDEX reconciliation_check_month_idx
    ON smsc.reconciliation_check (account, series, month, checked_at);

COMMENT ON TABLE smsc.reconciliation_check IS
    'One row per reconciliation check of a month. incomplete: some days of the month were never '
    'loaded, so SMSC was not asked (the gap check and python -m smsc_hook.gaps fill them); '
    'matched / differs: the month total from SMSC compared per login (rows in smsc.reconciliation).';
COMMENT ON COLUMN smsc.reconciliation_check.id IS 'Check number; smsc.reconciliation.check_id.';
COMMENT ON COLUMN smsc.reconciliation_check.account IS 'SMSC account.';
COMMENT ON COLUMN smsc.reconciliation_check.series IS 'main or balance2, as in stat_day.';
COMMENT ON COLUMN smsc.reconciliation_check.month IS 'First day of the checked calendar month.';
COMMENT ON COLUMN smsc.reconciliation_check.attempt IS
    '1 = first comparison; 2 = after re-fetching every day of the month.';
COMMENT ON COLUMN smsc.reconciliation_check.status IS 'incomplete, matched or differs.';
COMMENT ON COLUMN smsc.reconciliation_check.missing_days IS
    'Days of the month no load covered when checked (empty unless incomplete).';
COMMENT ON COLUMN smsc.reconciliation_check.checked_at IS 'When the check was made.';

ALTER TABLE smsc.reconciliation
    ADD COLUMN check_id bigint REFERENCES smsc.reconciliation_check (id);
COMMENT ON COLUMN smsc.reconciliation.check_id IS 'The check this login row belongs to.';

-- Checks recorded before this migration: one per (month, attempt, transaction time).
INSERT INTO smsc.reconciliation_check (account, series, month, attempt, status, checked_at)
SELECT account, series, month, attempt,
       CASE WHEN bool_and(matched) THEN 'matched' ELSE 'differs' END, checked_at
FROM smsc.reconciliation
GROUP BY account, series, month, attempt, checked_at;

UPDATE smsc.reconciliation AS r
SET check_id = c.id
FROM smsc.reconciliation_check AS c
WHERE (c.account, c.series, c.month, c.attempt, c.checked_at)
      = (r.account, r.series, r.month, r.attempt, r.checked_at);

ALTER TABLE smsc.reconciliation ALTER COLUMN check_id SET NOT NULL;
CREATE INDEX reconciliation_check_id_idx ON smsc.reconciliation (check_id);

-- The latest check of each month, with its login rows (none for an incomplete month).
DROP VIEW smsc.reconciliation_status;
CREATE VIEW smsc.reconciliation_status AS
WITH latest AS (
    SELECT DISTINCT ON (account, series, month) *
    FROM smsc.reconciliation_check
    ORDER BY account, series, month, checked_at DESC, id DESC
)
SELECT l.account, l.series, l.month, r.login, l.attempt, r.api_cnt, r.stored_cnt, r.cnt_diff,
       r.api_credit, r.stored_credit, r.credit_diff, r.api_debit, r.stored_debit, r.debit_diff,
       r.matched, l.checked_at, l.status, cardinality(l.missing_days) AS missing_day_count,
       l.missing_days
FROM latest AS l
LEFT JOIN smsc.reconciliation AS r ON r.check_id = l.id;

COMMENT ON VIEW smsc.reconciliation_status IS
    'Latest reconciliation check per account, series and month: one row per login compared, or '
    'one row with login NULL when the month was incomplete (days never loaded) or had no logins.';
COMMENT ON COLUMN smsc.reconciliation_status.account IS 'As smsc.reconciliation_check.account.';
COMMENT ON COLUMN smsc.reconciliation_status.series IS 'As smsc.reconciliation_check.series.';
COMMENT ON COLUMN smsc.reconciliation_status.month IS 'As smsc.reconciliation_check.month.';
COMMENT ON COLUMN smsc.reconciliation_status.login IS
    'As smsc.reconciliation.login; NULL for an incomplete month.';
COMMENT ON COLUMN smsc.reconciliation_status.attempt IS 'As smsc.reconciliation_check.attempt.';
COMMENT ON COLUMN smsc.reconciliation_status.api_cnt IS 'As smsc.reconciliation.api_cnt.';
COMMENT ON COLUMN smsc.reconciliation_status.stored_cnt IS 'As smsc.reconciliation.stored_cnt.';
COMMENT ON COLUMN smsc.reconciliation_status.cnt_diff IS 'As smsc.reconciliation.cnt_diff.';
COMMENT ON COLUMN smsc.reconciliation_status.api_credit IS 'As smsc.reconciliation.api_credit.';
COMMENT ON COLUMN smsc.reconciliation_status.stored_credit IS 'As smsc.reconciliation.stored_credit.';
COMMENT ON COLUMN smsc.reconciliation_status.credit_diff IS 'As smsc.reconciliation.credit_diff.';
COMMENT ON COLUMN smsc.reconciliation_status.api_debit IS 'As smsc.reconciliation.api_debit.';
COMMENT ON COLUMN smsc.reconciliation_status.stored_debit IS 'As smsc.reconciliation.stored_debit.';
COMMENT ON COLUMN smsc.reconciliation_status.debit_diff IS 'As smsc.reconciliation.debit_diff.';
COMMENT ON COLUMN smsc.reconciliation_status.matched IS
    'As smsc.reconciliation.matched; NULL for an incomplete month.';
COMMENT ON COLUMN smsc.reconciliation_status.checked_at IS 'As smsc.reconciliation_check.checked_at.';
COMMENT ON COLUMN smsc.reconciliation_status.status IS 'As smsc.reconciliation_check.status.';
COMMENT ON COLUMN smsc.reconciliation_status.missing_day_count IS
    'How many days of the month were never loaded when checked.';
COMMENT ON COLUMN smsc.reconciliation_status.missing_days IS
    'As smsc.reconciliation_check.missing_days.';

GRANT SELECT ON smsc.reconciliation_status TO smsc_reader;
