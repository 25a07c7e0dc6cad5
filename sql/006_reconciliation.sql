-- Monthly reconciliation: SMSC's total for a closed month, per login, against the sum of the
-- stored days. One row per (check, login); attempt 2 is the comparison after re-fetching
-- the month's days.

CREATE TABLE smsc.reconciliation (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account         text        NOT NULL CHECK (account <> ''),
    series          text        NOT NULL CHECK (series IN ('main', 'balance2')),
    month           date        NOT NULL CHECK (extract(day FROM month) = 1),
    login           text        NOT NULL CHECK (login <> ''),
    attempt         smallint    NOT NULL CHECK (attempt IN (1, 2)),
    api_cnt         bigint      NOT NULL,
    stored_cnt      bigint      NOT NULL,
    api_credit      numeric     NOT NULL,
    stored_credit   numeric     NOT NULL,
    api_debit       numeric     NOT NULL,
    stored_debit    numeric     NOT NULL,
    cnt_diff        bigint      GENERATED ALWAYS AS (api_cnt - stored_cnt) STORED,
    credit_diff     numeric     GENERATED ALWAYS AS (api_credit - stored_credit) STORED,
    debit_diff      numeric     GENERATED ALWAYS AS (api_debit - stored_debit) STORED,
    matched         boolean     GENERATED ALWAYS AS (
                        api_cnt = stored_cnt AND api_credit = stored_credit
                        AND api_debit = stored_debit) STORED,
    checked_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconciliation_month_idx ON smsc.reconciliation (account, series, month, checked_at);

COMMENT ON TABLE smsc.reconciliation IS
    'Monthly reconciliation: get_stat for a whole closed month (one call) compared per login '
    'with the sum of smsc.stat_day over that month. A mismatch re-fetches the month''s days '
    'and is checked again (attempt 2); a mismatch that persists fails the pipeline loudly.';
COMMENT ON COLUMN smsc.reconciliation.id IS 'Check row number.';
COMMENT ON COLUMN smsc.reconciliation.account IS 'SMSC account.';
COMMENT ON COLUMN smsc.reconciliation.series IS 'main or balance2, as in stat_day.';
COMMENT ON COLUMN smsc.reconciliation.login IS 'Login (account or subclient) compared.';
COMMENT ON COLUMN smsc.reconciliation.month IS 'First day of the reconciled calendar month.';
COMMENT ON COLUMN smsc.reconciliation.api_credit IS 'credit in the month-long reply (SMSC naming, see stat_day).';
COMMENT ON COLUMN smsc.reconciliation.stored_credit IS 'Sum of stat_day.credit over the month.';
COMMENT ON COLUMN smsc.reconciliation.api_debit IS 'debit in the month-long reply (SMSC naming, see stat_day).';
COMMENT ON COLUMN smsc.reconciliation.stored_debit IS 'Sum of stat_day.debit over the month.';
COMMENT ON COLUMN smsc.reconciliation.cnt_diff IS 'api_cnt - stored_cnt.';
COMMENT ON COLUMN smsc.reconciliation.credit_diff IS 'api_credit - stored_credit.';
COMMENT ON COLUMN smsc.reconciliation.debit_diff IS 'api_debit - stored_debit.';
COMMENT ON COLUMN smsc.reconciliation.checked_at IS 'When the comparison was made.';
COMMENT ON COLUMN smsc.reconciliation.attempt IS
    '1 = first comparison; 2 = after re-fetching every day of the month.';
COMMENT ON COLUMN smsc.reconciliation.api_cnt IS 'cnt in the month-long get_stat reply.';
COMMENT ON COLUMN smsc.reconciliation.stored_cnt IS 'Sum of stat_day.cnt over the month.';
COMMENT ON COLUMN smsc.reconciliation.matched IS 'All three figures equal.';

-- What BI shows: the latest check of each month and login.
CREATE VIEW smsc.reconciliation_status AS
SELECT DISTINCT ON (account, series, month, login)
       account, series, month, login, attempt, api_cnt, stored_cnt, cnt_diff,
       api_credit, stored_credit, credit_diff, api_debit, stored_debit, debit_diff,
       matched, checked_at
FROM smsc.reconciliation
ORDER BY account, series, month, login, checked_at DESC, id DESC;

COMMENT ON VIEW smsc.reconciliation_status IS
    'Latest reconciliation per account, series, month and login (see smsc.reconciliation).';

COMMENT ON COLUMN smsc.reconciliation_status.account IS 'As smsc.reconciliation.account.';
COMMENT ON COLUMN smsc.reconciliation_status.series IS 'As smsc.reconciliation.series.';
COMMENT ON COLUMN smsc.reconciliation_status.month IS 'As smsc.reconciliation.month.';
COMMENT ON COLUMN smsc.reconciliation_status.login IS 'As smsc.reconciliation.login.';
COMMENT ON COLUMN smsc.reconciliation_status.attempt IS 'As smsc.reconciliation.attempt.';
COMMENT ON COLUMN smsc.reconciliation_status.api_cnt IS 'As smsc.reconciliation.api_cnt.';
COMMENT ON COLUMN smsc.reconciliation_status.stored_cnt IS 'As smsc.reconciliation.stored_cnt.';
COMMENT ON COLUMN smsc.reconciliation_status.cnt_diff IS 'As smsc.reconciliation.cnt_diff.';
COMMENT ON COLUMN smsc.reconciliation_status.api_credit IS 'As smsc.reconciliation.api_credit.';
COMMENT ON COLUMN smsc.reconciliation_status.stored_credit IS 'As smsc.reconciliation.stored_credit.';
COMMENT ON COLUMN smsc.reconciliation_status.credit_diff IS 'As smsc.reconciliation.credit_diff.';
COMMENT ON COLUMN smsc.reconciliation_status.api_debit IS 'As smsc.reconciliation.api_debit.';
COMMENT ON COLUMN smsc.reconciliation_status.stored_debit IS 'As smsc.reconciliation.stored_debit.';
COMMENT ON COLUMN smsc.reconciliation_status.debit_diff IS 'As smsc.reconciliation.debit_diff.';
COMMENT ON COLUMN smsc.reconciliation_status.matched IS 'As smsc.reconciliation.matched.';
COMMENT ON COLUMN smsc.reconciliation_status.checked_at IS 'As smsc.reconciliation.checked_at.';

GRANT SELECT ON smsc.reconciliation_status TO smsc_reader;
