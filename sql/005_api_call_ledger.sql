-- The API call ledger: every get_stat HTTP attempt, whoever makes it. The pacer counts the
-- rows of the last rate window under an advisory lock before it lets a call start, so the
-- limit holds across workers, deployments and manual runs that share this warehouse.

CREATE TABLE smsc.api_calls (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account         text        NOT NULL CHECK (account <> ''),
    reserved_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    window_start    date        NOT NULL,
    window_end      date        NOT NULL,
    host            text        NOT NULL,
    caller          text        NOT NULL DEFAULT '',
    waited_ms       integer     NOT NULL DEFAULT 0 CHECK (waited_ms >= 0),
    finished_at     timestamptz,
    outcome         text        NOT NULL DEFAULT 'pending' CHECK (
                        outcome IN ('pending', 'ok', 'api_error', 'bad_reply',
                                    'transport_error', 'client_error')),
    error_code      integer,
    latency_ms      integer     CHECK (latency_ms >= 0),
    CONSTRAINT api_calls_window_order CHECK (window_end >= window_start),
    CONSTRAINT api_calls_code_only_for_api_errors CHECK (
        error_code IS NULL OR outcome = 'api_error')
);
CREATE INDEX api_calls_account_time_idx ON smsc.api_calls (account, reserved_at);
CREATE INDEX api_calls_errors_idx ON smsc.api_calls (account, error_code, reserved_at)
    WHERE error_code IS NOT NULL;

COMMENT ON TABLE smsc.api_calls IS
    'Ledger of get_stat HTTP attempts (one row per attempt, failed ones included). The pacer '
    'allows a new attempt only while fewer than the limit started in the last rate window.';
COMMENT ON COLUMN smsc.api_calls.id IS 'Attempt number, in reservation order.';
COMMENT ON COLUMN smsc.api_calls.account IS 'SMSC account whose rate budget the attempt used.';
COMMENT ON COLUMN smsc.api_calls.window_start IS 'get_stat start of the requested window.';
COMMENT ON COLUMN smsc.api_calls.window_end IS 'get_stat end of the requested window.';
COMMENT ON COLUMN smsc.api_calls.host IS 'Base URL the attempt went to (primary or reserve host).';
COMMENT ON COLUMN smsc.api_calls.finished_at IS 'When the reply (or the fault) came; NULL while pending.';
COMMENT ON COLUMN smsc.api_calls.reserved_at IS
    'Database clock time the slot was granted, just before the HTTP request was sent.';
COMMENT ON COLUMN smsc.api_calls.caller IS
    'Who made the call: dag_id/run_id/task_id[map_index]#try, or the process for non-Airflow use.';
COMMENT ON COLUMN smsc.api_calls.waited_ms IS
    'How long the caller waited for a free slot before this attempt.';
COMMENT ON COLUMN smsc.api_calls.outcome IS
    'pending while in flight; ok, api_error (see error_code), bad_reply, transport_error or '
    'client_error afterwards. A pending row older than a few minutes is a crashed caller.';
COMMENT ON COLUMN smsc.api_calls.error_code IS
    'SMSC error code of an api_error reply: 1 parameters, 2 auth, 4 IP blocked, 9 rate limited.';
COMMENT ON COLUMN smsc.api_calls.latency_ms IS 'Reply time of the HTTP request, or time to fault.';
