-- TOTP second factors: the seed sealed with AES-256-GCM (never in clear), and the last time step
-- accepted, so a code is accepted once.
CREATE TABLE identity_totp (
    identity_id TEXT PRIMARY KEY REFERENCES identities (id) ON DELETE CASCADE,
    secret      TEXT NOT NULL,
    last_step   BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);
