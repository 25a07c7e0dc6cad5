-- Base tables: daily statistics, the load log, the raw reply archive, the revision history.
-- Applied by smsc_hook.migrations in one transaction; no BEGIN/COMMIT here.

CREATE SCHEMA IF NOT EXISTS smsc;
COMMENT ON SCHEMA smsc IS
    'SMSC (smsc.ru) sending statistics loaded from the get_stat API. BI reads the views; '
    'the tables are written only by the loader (smsc_hook.warehouse).';

-- One row per fetched window. A window fetched with an empty reply still gets a row here,
-- which is what tells "fetched and empty" apart from "never fetched".
CREATE TABLE smsc.load_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account         text        NOT NULL CHECK (account <> ''),
    series          text        NOT NULL CHECK (series IN ('main', 'balance2')),
    window_start    date        NOT NULL,
    window_end      date        NOT NULL,
    loaded_at       timestamptz NOT NULL,
    row_count       integer     NOT NULL CHECK (row_count >= 0),
    reply_sha256    text        NOT NULL CHECK (reply_sha256 ~ '^[0-9a-f]{64}$'),
    inserted        integer     NOT NULL CHECK (inserted >= 0),
    updated         integer     NOT NULL CHECK (updated >= 0),
    deleted         integer     NOT NULL CHECK (deleted >= 0),
    unchanged       integer     NOT NULL CHECK (unchanged >= 0),
    CONSTRAINT load_log_window_order CHECK (window_end >= window_start),
    CONSTRAINT load_log_counts_add_up CHECK (inserted + updated + unchanged = row_count)
);
CREATE INDEX load_log_window_idx ON smsc.load_log (account, series, window_start, window_end);

COMMENT ON TABLE smsc.load_log IS
    'One row per get_stat window fetched and stored (also when the reply had no rows). '
    'Append-only history of loads.';
COMMENT ON COLUMN smsc.load_log.id IS 'Load id; referenced by stat_day, raw_reply and stat_revision.';
COMMENT ON COLUMN smsc.load_log.account IS 'SMSC account (API login) the window was fetched for.';
COMMENT ON COLUMN smsc.load_log.series IS
    'main = statistics of the main (non-cash) balance; balance2 = the "electronic balance" '
    '(get_stat with balance2=1).';
COMMENT ON COLUMN smsc.load_log.window_start IS 'First day of the fetched window (get_stat start).';
COMMENT ON COLUMN smsc.load_log.window_end IS 'Last day of the fetched window (get_stat end), inclusive.';
COMMENT ON COLUMN smsc.load_log.loaded_at IS 'When the load was written (after its window lock was taken).';
COMMENT ON COLUMN smsc.load_log.row_count IS 'Rows (logins) in the reply; 0 = fetched and empty.';
COMMENT ON COLUMN smsc.load_log.reply_sha256 IS 'SHA-256 (hex) of the raw reply body; see raw_reply.';
COMMENT ON COLUMN smsc.load_log.inserted IS 'Logins of the reply that were not stored for the window before.';
COMMENT ON COLUMN smsc.load_log.updated IS 'Logins whose cnt/credit/debit/currency changed.';
COMMENT ON COLUMN smsc.load_log.deleted IS 'Stored logins absent from this reply, removed.';
COMMENT ON COLUMN smsc.load_log.unchanged IS 'Logins re-fetched with identical values.';

-- Daily statistics: the current state, one row per login and day.
CREATE TABLE smsc.stat_day (
    account         text        NOT NULL CHECK (account <> ''),
    series          text        NOT NULL CHECK (series IN ('main', 'balance2')),
    stat_date       date        NOT NULL,
    login           text        NOT NULL CHECK (login <> ''),
    cnt             bigint      NOT NULL CHECK (cnt >= 0),
    -- '<' Infinity also rejects NaN, which PostgreSQL sorts above every number.
    credit          numeric     NOT NULL CHECK (credit > '-Infinity' AND credit < 'Infinity'),
    debit           numeric     NOT NULL CHECK (debit > '-Infinity' AND debit < 'Infinity'),
    currency        text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    first_loaded_at timestamptz NOT NULL,
    last_loaded_at  timestamptz NOT NULL,
    last_load_id    bigint      NOT NULL REFERENCES smsc.load_log (id),
    PRIMARY KEY (account, series, stat_date, login)
);

COMMENT ON TABLE smsc.stat_day IS
    'Current SMSC get_stat figures per account, series, day and login, as last fetched. '
    'Earlier values are in stat_revision.';
COMMENT ON COLUMN smsc.stat_day.account IS 'SMSC account (API login) the statistics were fetched with.';
COMMENT ON COLUMN smsc.stat_day.series IS
    'main = paid from the main (non-cash) balance; balance2 = paid from the "electronic balance".';
COMMENT ON COLUMN smsc.stat_day.stat_date IS
    'Day the figures are for (get_stat start = end = this day; SMSC''s day, likely in the '
    'account''s time zone).';
COMMENT ON COLUMN smsc.stat_day.login IS 'Login the row is for: the account itself or one of its subclients.';
COMMENT ON COLUMN smsc.stat_day.cnt IS 'SMSC cnt: number of messages sent that day.';
COMMENT ON COLUMN smsc.stat_day.credit IS
    'SMSC field "credit", kept under the SMSC name: money written off for the messages. '
    'The English API doc glosses credit as "debit" (and debit as "credit") - reversed; '
    'do not rename from the English page.';
COMMENT ON COLUMN smsc.stat_day.debit IS
    'SMSC field "debit", kept under the SMSC name: money credited. The English API doc glosses '
    'debit as "credit" (and credit as "debit") - reversed.';
COMMENT ON COLUMN smsc.stat_day.currency IS
    'Three-letter currency code as SMSC sent it; roubles appear both as RUR and RUB.';
COMMENT ON COLUMN smsc.stat_day.first_loaded_at IS 'When this login first appeared for this day.';
COMMENT ON COLUMN smsc.stat_day.last_loaded_at IS 'When a fetch last confirmed or changed the row.';
COMMENT ON COLUMN smsc.stat_day.last_load_id IS 'load_log.id of the fetch that last confirmed or changed the row.';

-- The reply exactly as received, so any row can be re-derived and any parser bug audited.
CREATE TABLE smsc.raw_reply (
    load_id         bigint      PRIMARY KEY REFERENCES smsc.load_log (id),
    body            bytea       NOT NULL,
    reply_format    smallint    NOT NULL CHECK (reply_format BETWEEN 0 AND 3),
    sha256          text        NOT NULL,
    CONSTRAINT raw_reply_sha256_matches CHECK (sha256 = encode(sha256(body), 'hex'))
);

COMMENT ON TABLE smsc.raw_reply IS 'Archive of the get_stat reply bodies, one per load, byte for byte.';
COMMENT ON COLUMN smsc.raw_reply.load_id IS 'The load (load_log.id) this reply was stored by.';
COMMENT ON COLUMN smsc.raw_reply.body IS 'Reply body exactly as received (bytes, in the requested charset).';
COMMENT ON COLUMN smsc.raw_reply.reply_format IS
    'SMSC fmt of the request: 0 text, 1 comma-separated, 2 XML, 3 JSON.';
COMMENT ON COLUMN smsc.raw_reply.sha256 IS 'SHA-256 (hex) of body; checked by a constraint.';

-- What changed between fetches of an already-loaded day. The first load of a day writes none.
CREATE TABLE smsc.stat_revision (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account         text        NOT NULL,
    series          text        NOT NULL CHECK (series IN ('main', 'balance2')),
    stat_date       date        NOT NULL,
    login           text        NOT NULL,
    old_cnt         bigint,
    old_credit      numeric,
    old_debit       numeric,
    old_currency    text,
    new_cnt         bigint,
    new_credit      numeric,
    new_debit       numeric,
    new_currency    text,
    changed_at      timestamptz NOT NULL,
    load_id         bigint      NOT NULL REFERENCES smsc.load_log (id),
    CONSTRAINT stat_revision_old_all_or_none
        CHECK (num_nulls(old_cnt, old_credit, old_debit, old_currency) IN (0, 4)),
    CONSTRAINT stat_revision_new_all_or_none
        CHECK (num_nulls(new_cnt, new_credit, new_debit, new_currency) IN (0, 4)),
    CONSTRAINT stat_revision_not_empty CHECK (old_cnt IS NOT NULL OR new_cnt IS NOT NULL)
);
CREATE INDEX stat_revision_day_idx ON smsc.stat_revision (account, series, stat_date, login);
CREATE INDEX stat_revision_load_idx ON smsc.stat_revision (load_id);

COMMENT ON TABLE smsc.stat_revision IS
    'History of changes to stat_day made by re-fetching a day that was already loaded. '
    'old_* NULL = the login newly appeared; new_* NULL = the login vanished from the reply.';
COMMENT ON COLUMN smsc.stat_revision.id IS 'Revision id, increasing in write order.';
COMMENT ON COLUMN smsc.stat_revision.account IS 'SMSC account of the changed row.';
COMMENT ON COLUMN smsc.stat_revision.series IS 'main or balance2, as in stat_day.';
COMMENT ON COLUMN smsc.stat_revision.stat_date IS 'Day of the changed row.';
COMMENT ON COLUMN smsc.stat_revision.login IS 'Login of the changed row.';
COMMENT ON COLUMN smsc.stat_revision.old_cnt IS 'cnt before the change; NULL if the login was new.';
COMMENT ON COLUMN smsc.stat_revision.old_credit IS
    'SMSC credit before the change (English doc glosses it reversed, as "debit"); NULL if new.';
COMMENT ON COLUMN smsc.stat_revision.old_debit IS
    'SMSC debit before the change (English doc glosses it reversed, as "credit"); NULL if new.';
COMMENT ON COLUMN smsc.stat_revision.old_currency IS 'Currency before the change; NULL if the login was new.';
COMMENT ON COLUMN smsc.stat_revision.new_cnt IS 'cnt after the change; NULL if the login vanished.';
COMMENT ON COLUMN smsc.stat_revision.new_credit IS
    'SMSC credit after the change (English doc glosses it reversed, as "debit"); NULL if vanished.';
COMMENT ON COLUMN smsc.stat_revision.new_debit IS
    'SMSC debit after the change (English doc glosses it reversed, as "credit"); NULL if vanished.';
COMMENT ON COLUMN smsc.stat_revision.new_currency IS 'Currency after the change; NULL if the login vanished.';
COMMENT ON COLUMN smsc.stat_revision.changed_at IS 'When the change was written (the load''s loaded_at).';
COMMENT ON COLUMN smsc.stat_revision.load_id IS 'The load (load_log.id) that made the change.';
