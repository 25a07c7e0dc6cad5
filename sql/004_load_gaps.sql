-- Gap view: the days a pipeline still owes, per account and series.

CREATE VIEW smsc.load_gaps AS
WITH first_loaded AS (
    SELECT account, series, min(window_start) AS first_day
    FROM smsc.load_log
    GROUP BY account, series
)
SELECT f.account, f.series, f.first_day + g.n AS day
FROM first_loaded AS f
CROSS JOIN LATERAL generate_series(0, (current_date - 1) - f.first_day) AS g (n)
WHERE NOT EXISTS (
    SELECT FROM smsc.load_log AS l
    WHERE l.account = f.account
      AND l.series = f.series
      AND f.first_day + g.n BETWEEN l.window_start AND l.window_end
);

COMMENT ON VIEW smsc.load_gaps IS
    'Days never fetched: for each account and series, every day from its first loaded window '
    'up to yesterday (current_date - 1 in the session time zone) that no load_log window covers. '
    'A day fetched with an empty reply is not a gap.';
COMMENT ON COLUMN smsc.load_gaps.account IS 'SMSC account.';
COMMENT ON COLUMN smsc.load_gaps.series IS 'main (non-cash balance) or balance2 ("electronic balance").';
COMMENT ON COLUMN smsc.load_gaps.day IS 'A day no fetched window covers.';

GRANT SELECT ON smsc.load_gaps TO smsc_reader;
