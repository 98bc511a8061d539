-- The access model: what roles grant, who holds them, requests, approvals, grants, SoD,
-- break-glass reviews and the webhook outbox. Same text for both dialects: kept in step with
-- the other directory's 0002_access.sql (a test compares the schemas column by column).
-- Booleans are BIGINT 0/1; lists and records are JSON in TEXT.

-- What a role grants and how it is requested (targets, logins, approvals, condition, ...): JSON,
-- see broker/src/role_spec.rs. `source` is `apply` for roles managed by `gatehouse apply`.
ALTER TABLE roles ADD COLUMN spec TEXT NOT NULL DEFAULT '{}';
ALTER TABLE roles ADD COLUMN source TEXT NOT NULL DEFAULT 'api';
-- Who owns a target ("group:NAME" or a username): an approver set of roles can name it.
ALTER TABLE targets ADD COLUMN owner TEXT;
ALTER TABLE targets ADD COLUMN source TEXT NOT NULL DEFAULT 'api';

-- A role held by an identity or a group: standing (active now) or eligible (must be requested).
CREATE TABLE role_assignments (
    id           TEXT PRIMARY KEY,
    role_id      TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('identity', 'group')),
    subject_id   TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('standing', 'eligible')),
    not_before   BIGINT,
    not_after    BIGINT,
    source       TEXT NOT NULL DEFAULT 'api',
    created_at   BIGINT NOT NULL,
    UNIQUE (role_id, subject_kind, subject_id, kind)
);
CREATE INDEX role_assignments_by_subject ON role_assignments (subject_kind, subject_id);

-- Access requests. role_id/role_name are kept without a foreign key: history outlives roles.
CREATE TABLE access_requests (
    id            TEXT PRIMARY KEY,
    requester_id  TEXT NOT NULL REFERENCES identities (id),
    role_id       TEXT NOT NULL,
    role_name     TEXT NOT NULL,
    targets       TEXT,
    login         TEXT,
    duration_ms   BIGINT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    ticket        TEXT,
    start_at      BIGINT,
    extends_grant TEXT,
    break_glass   BIGINT NOT NULL DEFAULT 0,
    state         TEXT NOT NULL
                  CHECK (state IN ('pending', 'approved', 'denied', 'cancelled', 'expired')),
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    decided_at    BIGINT,
    grant_id      TEXT
);
CREATE INDEX access_requests_by_requester ON access_requests (requester_id, created_at);
CREATE INDEX access_requests_by_state ON access_requests (state);

-- One decision per approver and request.
CREATE TABLE request_decisions (
    request_id  TEXT NOT NULL REFERENCES access_requests (id),
    approver_id TEXT NOT NULL REFERENCES identities (id),
    decision    TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
    comment     TEXT NOT NULL DEFAULT '',
    mfa_at      BIGINT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (request_id, approver_id)
);

-- Time-bound grants from approved requests and break-glass. Active while
-- not_before <= now < not_after and revoked_at IS NULL.
CREATE TABLE grants (
    id            TEXT PRIMARY KEY,
    identity_id   TEXT NOT NULL REFERENCES identities (id),
    role_id       TEXT NOT NULL,
    role_name     TEXT NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('request', 'break_glass')),
    request_id    TEXT,
    targets       TEXT,
    login         TEXT,
    not_before    BIGINT NOT NULL,
    not_after     BIGINT NOT NULL,
    revoked_at    BIGINT,
    revoked_by    TEXT,
    revoke_reason TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX grants_by_identity ON grants (identity_id, not_after);
CREATE INDEX grants_by_end ON grants (not_after);

-- Segregation of duties: holding a role of `left_roles` and one of `right_roles` conflicts.
CREATE TABLE sod_rules (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    left_roles  TEXT NOT NULL,
    right_roles TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL DEFAULT 'api',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- An accepted SoD conflict for one identity, until it expires.
CREATE TABLE sod_exceptions (
    id          TEXT PRIMARY KEY,
    rule_name   TEXT NOT NULL,
    identity_id TEXT NOT NULL REFERENCES identities (id),
    approved_by TEXT NOT NULL,
    reason      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX sod_exceptions_by_identity ON sod_exceptions (identity_id);

-- Items someone must look at after the fact (every break-glass grant opens one).
CREATE TABLE reviews (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    identity_id TEXT NOT NULL REFERENCES identities (id),
    grant_id    TEXT,
    summary     TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    created_at  BIGINT NOT NULL,
    closed_at   BIGINT,
    closed_by   TEXT,
    outcome     TEXT
);

-- Outbound webhooks, written in the transaction of the change and delivered by a background
-- worker with retries, so a slow receiver never blocks a request.
CREATE TABLE webhook_outbox (
    id              TEXT PRIMARY KEY,
    channel         TEXT NOT NULL CHECK (channel IN ('notify', 'alert')),
    payload         TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at    BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (delivered_at, next_attempt_at);

-- Bumped by every transaction that changes who may reach what; caches compare it.
CREATE TABLE access_version (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO access_version (id, version) VALUES (1, 0);
