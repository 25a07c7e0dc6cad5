-- BI surface: stable views over the base tables. BI tools read these, never the tables.

CREATE VIEW smsc.daily_stats AS
SELECT stat_date, account, series, login, cnt, credit, debit, currency, last_loaded_at
FROM smsc.stat_day;

COMMENT ON VIEW smsc.daily_stats IS
    'SMSC sending statistics per day, account, series and login (current values). '
    'A day with no rows was either fetched and empty or never fetched: see smsc.load_gaps.';
COMMENT ON COLUMN smsc.daily_stats.stat_date IS 'Day the figures are for.';
COMMENT ON COLUMN smsc.daily_stats.account IS 'SMSC account the statistics were fetched with.';
COMMENT ON COLUMN smsc.daily_stats.series IS
    'main = paid from the main (non-cash) balance; balance2 = paid from the "electronic balance".';
COMMENT ON COLUMN smsc.daily_stats.login IS 'The account itself or one of its subclients.';
COMMENT ON COLUMN smsc.daily_stats.cnt IS 'Number of messages sent that day.';
COMMENT ON COLUMN smsc.daily_stats.credit IS
    'SMSC field "credit" (money written off for the messages). The English API doc glosses it '
    'reversed, as "debit"; the SMSC name is kept.';
COMMENT ON COLUMN smsc.daily_stats.debit IS
    'SMSC field "debit" (money credited). The English API doc glosses it reversed, as "credit"; '
    'the SMSC name is kept.';
COMMENT ON COLUMN smsc.daily_stats.currency IS 'Three-letter currency code; roubles appear as RUR or RUB.';
COMMENT ON COLUMN smsc.daily_stats.last_loaded_at IS 'When a fetch last confirmed or changed the row.';

CREATE VIEW smsc.monthly_stats AS
SELECT date_trunc('month', stat_date)::date AS month,
       account,
       series,
       login,
       currency,
       sum(cnt)::bigint AS cnt,
       sum(credit)      AS credit,
       sum(debit)       AS debit,
       count(*)::integer AS days
FROM smsc.stat_day
GROUP BY 1, account, series, login, currency;

COMMENT ON VIEW smsc.monthly_stats IS
    'SMSC sending statistics summed per calendar month, account, series, login and currency. '
    'Amounts in different currencies are never added together.';
COMMENT ON COLUMN smsc.monthly_stats.month IS 'First day of the month.';
COMMENT ON COLUMN smsc.monthly_stats.account IS 'SMSC account the statistics were fetched with.';
COMMENT ON COLUMN smsc.monthly_stats.series IS 'main (non-cash balance) or balance2 ("electronic balance").';
COMMENT ON COLUMN smsc.monthly_stats.login IS 'The account itself or one of its subclients.';
COMMENT ON COLUMN smsc.monthly_stats.currency IS 'Three-letter currency code; roubles appear as RUR or RUB.';
COMMENT ON COLUMN smsc.monthly_stats.cnt IS 'Messages sent in the month.';
COMMENT ON COLUMN smsc.monthly_stats.credit IS
    'Sum of SMSC "credit" (money written off). The English API doc glosses it reversed, as "debit".';
COMMENT ON COLUMN smsc.monthly_stats.debit IS
    'Sum of SMSC "debit" (money credited). The English API doc glosses it reversed, as "credit".';
COMMENT ON COLUMN smsc.monthly_stats.days IS 'Days of the month with a row for this login and currency.';
