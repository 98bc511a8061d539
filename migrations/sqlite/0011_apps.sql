-- The app gateway's sign-in hand-off: one-time codes the web UI issues for an app host, and the
-- app sessions they become (the app host's cookie, stored as its SHA-256). Identical in both
-- dialects.
CREATE TABLE app_codes (
    code_hash TEXT PRIMARY KEY,
    target_id TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    web_session_id TEXT NOT NULL,
    state_hash TEXT NOT NULL,
    next_path TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE TABLE app_sessions (
    id TEXT PRIMARY KEY,
    target_id TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    web_session_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT,
    end_reason TEXT
);
CREATE INDEX app_sessions_by_web_session ON app_sessions (web_session_id);
CREATE INDEX app_sessions_by_identity ON app_sessions (identity_id);
