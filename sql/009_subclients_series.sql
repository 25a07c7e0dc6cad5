-- The series 'subclients': a reseller's statistics per subclient from users.php?get_stat,
-- loaded beside get.php's 'main' (and 'balance2') with the same atomic, revisioned,
-- gap-checked and reconciled treatment. Only the allowed values and the comments change.

ALTER TABLE smsc.load_log DROP CONSTRAINT load_log_series_check;
ALTER TABLE smsc.load_log ADD CONSTRAINT load_log_series_check
    CHECK (series IN ('main', 'balance2', 'subclients'));
ALTER TABLE smsc.stat_day DROP CONSTRAINT stat_day_series_check;
ALTER TABLE smsc.stat_day ADD CONSTRAINT stat_day_series_check
    CHECK (series IN ('main', 'balance2', 'subclients'));
ALTER TABLE smsc.stat_revision DROP CONSTRAINT stat_revision_series_check;
ALTER TABLE smsc.stat_revision ADD CONSTRAINT stat_revision_series_check
    CHECK (series IN ('main', 'balance2', 'subclients'));
ALTER TABLE smsc.reconciliation DROP CONSTRAINT reconciliation_series_check;
ALTER TABLE smsc.reconciliation ADD CONSTRAINT reconciliation_series_check
    CHECK (series IN ('main', 'balance2', 'subclients'));
ALTER TABLE smsc.reconciliation_check DROP CONSTRAINT reconciliation_check_series_check;
ALTER TABLE smsc.reconciliation_check ADD CONSTRAINT reconciliation_check_series_check
    CHECK (series IN ('main', 'balance2', 'subclients'));
ALTER TABLE smsc.disputed_reply DROP CONSTRAINT disputed_reply_series_check;
ALTER TABLE smsc.disputed_reply ADD CONSTRAINT disputed_reply_series_check
    CHECK (series IN ('main', 'balance2', 'subclients'));

COMMENT ON COLUMN smsc.load_log.series IS
    'main = statistics of the main (non-cash) balance; balance2 = the "electronic balance" '
    '(get_stat with balance2=1); subclients = a reseller''s subclients, one row each '
    '(users.php?get_stat, with the account''s reseller / hide_deleted options).';
COMMENT ON COLUMN smsc.stat_day.series IS
    'main = paid from the main (non-cash) balance; balance2 = paid from the "electronic balance"; '
    'subclients = per subclient of a reseller, from users.php?get_stat. A subclient may also '
    'appear under main: do not add the series together.';
COMMENT ON COLUMN smsc.stat_revision.series IS 'main, balance2 or subclients, as in stat_day.';
COMMENT ON COLUMN smsc.reconciliation.series IS 'main, balance2 or subclients, as in stat_day.';
COMMENT ON COLUMN smsc.reconciliation_check.series IS 'main, balance2 or subclients, as in stat_day.';
COMMENT ON COLUMN smsc.disputed_reply.series IS
    'main = statistics of the main (non-cash) balance; balance2 = the "electronic balance"; '
    'subclients = users.php?get_stat per subclient.';
COMMENT ON TABLE smsc.raw_reply IS
    'Archive of the statistics reply bodies (get.php?get_stat, or users.php?get_stat for the '
    'subclients series), one per load, byte for byte.';
COMMENT ON COLUMN smsc.api_calls.host IS
    'Base URL the attempt went to (primary or reserve host); users.php?get_stat attempts '
    '(series subclients) carry the path too, e.g. https://smsc.ru/sys/users.php.';

COMMENT ON COLUMN smsc.daily_stats.series IS
    'main = paid from the main (non-cash) balance; balance2 = paid from the "electronic balance"; '
    'subclients = per subclient of a reseller (users.php?get_stat). A subclient may also appear '
    'under main: filter on one series, never add them together.';
COMMENT ON COLUMN smsc.daily_stats.login IS
    'The account itself or one of its subclients (series subclients: always a subclient).';
COMMENT ON COLUMN smsc.monthly_stats.series IS
    'main (non-cash balance), balance2 ("electronic balance") or subclients (per subclient of a '
    'reseller, users.php?get_stat).';
COMMENT ON COLUMN smsc.monthly_stats.login IS
    'The account itself or one of its subclients (series subclients: always a subclient).';
COMMENT ON COLUMN smsc.load_gaps.series IS
    'main (non-cash balance), balance2 ("electronic balance") or subclients (users.php).';
COMMENT ON COLUMN smsc.reconciliation_status.series IS 'main, balance2 or subclients.';
