-- Disputed replies: re-fetches that would have removed stored logins but were not confirmed
-- by a second, independent fetch. They are kept here, byte for byte, instead of being loaded;
-- stat_day keeps what it had. Written by smsc_hook.warehouse (Warehouse.archive_disputed).

CREATE TABLE smsc.disputed_reply (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account         text        NOT NULL CHECK (account <> ''),
    series          text        NOT NULL CHECK (series IN ('main', 'balance2')),
    stat_date       date        NOT NULL,
    fetched_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    reply_format    smallint    NOT NULL CHECK (reply_format BETWEEN 0 AND 3),
    body            bytea       NOT NULL,
    sha256          text        NOT NULL,
    reason          text        NOT NULL CHECK (btrim(reason) <> ''),
    CONSTRAINT disputed_reply_sha256_matches CHECK (sha256 = encode(sha256(body), 'hex'))
);
CREATE INDEX disputed_reply_day_idx ON smsc.disputed_reply (account, series, stat_date);

COMMENT ON TABLE smsc.disputed_reply IS
    'get_stat replies for one day that would have removed stored logins (or emptied the day) '
    'and that a second fetch did not confirm; archived instead of loaded, stat_day unchanged. '
    'Append-only; not visible to smsc_reader.';
COMMENT ON COLUMN smsc.disputed_reply.id IS 'Archive row id, increasing in write order.';
COMMENT ON COLUMN smsc.disputed_reply.account IS 'SMSC account (API login) the day was fetched for.';
COMMENT ON COLUMN smsc.disputed_reply.series IS
    'main = statistics of the main (non-cash) balance; balance2 = the "electronic balance".';
COMMENT ON COLUMN smsc.disputed_reply.stat_date IS 'Day the reply is for (get_stat start = end = this day).';
COMMENT ON COLUMN smsc.disputed_reply.fetched_at IS
    'When the reply was archived (database clock); the fetch itself came shortly before.';
COMMENT ON COLUMN smsc.disputed_reply.reply_format IS
    'SMSC fmt of the request: 0 text, 1 comma-separated, 2 XML, 3 JSON.';
COMMENT ON COLUMN smsc.disputed_reply.body IS 'Reply body exactly as received (bytes, in the requested charset).';
COMMENT ON COLUMN smsc.disputed_reply.sha256 IS 'SHA-256 (hex) of body; checked by a constraint.';
COMMENT ON COLUMN smsc.disputed_reply.reason IS
    'Why the reply was not loaded, as the loader described it (e.g. the logins it would remove).';
