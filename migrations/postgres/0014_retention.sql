-- Retention: when a session's recording was deleted past `[retention] recordings` (its signed
-- manifest is kept), and the scheduled evidence reports' next run.
ALTER TABLE sessions ADD COLUMN recording_deleted_at BIGINT;

-- `next_run_at` is also the lease of a run in progress; `running_due` the run it is making, so
-- a run whose instance died is made again by another when the lease runs out.
CREATE TABLE report_schedules (
    name          TEXT PRIMARY KEY,
    next_run_at   BIGINT NOT NULL,
    running_due   BIGINT,
    last_run_at   BIGINT,
    last_output   TEXT
);

-- Evidence packs and the dashboard read the audit log by action and period, and count denials.
CREATE INDEX audit_events_by_action ON audit_events (action, time);
CREATE INDEX audit_events_denials ON audit_events (time) WHERE outcome = 'deny';
