-- Core tables of Gatehouse (PostgreSQL dialect). Keep in step with ../sqlite/0001_core.sql:
-- a test compares the two schemas column by column.
-- Conventions: text ids (UUID v7), integer epoch-millisecond times, JSON in TEXT columns.

CREATE TABLE identities (
    id           TEXT PRIMARY KEY,
    username     TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL DEFAULT '',
    email        TEXT,
    status       TEXT NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'disabled', 'suspended', 'prehire', 'terminated')),
    attributes   TEXT NOT NULL DEFAULT '{}',
    source       TEXT NOT NULL DEFAULT 'local',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- Control-plane rights of an identity (admin, ...), distinct from the access roles it holds.
CREATE TABLE identity_privileges (
    identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    privilege   TEXT NOT NULL,
    granted_at  BIGINT NOT NULL,
    granted_by  TEXT NOT NULL,
    PRIMARY KEY (identity_id, privilege)
);

CREATE TABLE groups (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL DEFAULT 'local',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id    TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    added_at    BIGINT NOT NULL,
    PRIMARY KEY (group_id, identity_id)
);
CREATE INDEX group_members_by_identity ON group_members (identity_id);

CREATE TABLE ssh_keys (
    id           TEXT PRIMARY KEY,
    identity_id  TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    algorithm    TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    fingerprint  TEXT NOT NULL UNIQUE,
    comment      TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX ssh_keys_by_identity ON ssh_keys (identity_id);

CREATE TABLE targets (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('ssh', 'http')),
    address     TEXT NOT NULL,
    labels      TEXT NOT NULL DEFAULT '{}',
    host_key    TEXT,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE roles (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- API tokens: only the SHA-256 of the token is kept; the token is shown once at creation.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    identity_id  TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_tokens_by_identity ON api_tokens (identity_id);

-- One-time setup codes printed at first start while no administrator exists.
CREATE TABLE setup_codes (
    id         TEXT PRIMARY KEY,
    code_hash  TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

-- The audit log: an append-only hash chain. hash = SHA-256 over the canonical encoding of the
-- row including prev_hash (see docs/audit.md). Hashes are lower-case hex.
CREATE TABLE audit_events (
    seq       BIGINT PRIMARY KEY CHECK (seq > 0),
    time      BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    object    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_events_by_time ON audit_events (time);

-- The head of the chain: one row, locked by every append so appends are serialised.
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Signed statements "the log had `size` events and event `size` had hash `root_hash`".
CREATE TABLE audit_checkpoints (
    size       BIGINT PRIMARY KEY,
    root_hash  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    key_id     TEXT NOT NULL,
    signature  TEXT NOT NULL
);

CREATE FUNCTION gatehouse_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION gatehouse_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION gatehouse_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION gatehouse_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION gatehouse_append_only();
