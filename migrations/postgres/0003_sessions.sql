-- Sessions through the gateways: who reached what, as which login, carried by which grant, for
-- how long, how many bytes each way, why it ended, and where its recording is.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    identity_id  TEXT NOT NULL REFERENCES identities (id),
    identity     TEXT NOT NULL,
    target       TEXT NOT NULL,
    login        TEXT NOT NULL,
    protocol     TEXT NOT NULL,
    kind         TEXT NOT NULL DEFAULT 'shell',
    grant_kind   TEXT NOT NULL,
    grant_id     TEXT NOT NULL,
    source       TEXT NOT NULL DEFAULT '',
    started_at   BIGINT NOT NULL,
    ended_at     BIGINT,
    end_reason   TEXT,
    bytes_up     BIGINT NOT NULL DEFAULT 0,
    bytes_down   BIGINT NOT NULL DEFAULT 0,
    recording    TEXT
);
CREATE INDEX sessions_by_identity ON sessions (identity_id, started_at);
CREATE INDEX sessions_by_start ON sessions (started_at);
CREATE INDEX sessions_live ON sessions (ended_at);
