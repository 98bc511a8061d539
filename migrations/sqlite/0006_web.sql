-- Web sign-in: passwords, passkeys, recovery codes and browser sessions.
-- Identical in both dialects.

-- Local passwords, as argon2id PHC strings (never the password).
CREATE TABLE identity_passwords (
    identity_id TEXT PRIMARY KEY REFERENCES identities (id) ON DELETE CASCADE,
    hash        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- WebAuthn passkeys: the credential as webauthn-rs serialises it (public key, counter).
CREATE TABLE identity_passkeys (
    id           TEXT PRIMARY KEY,
    identity_id  TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    credential   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX identity_passkeys_by_identity ON identity_passkeys (identity_id);

-- Single-use recovery codes (SHA-256 of each; shown once).
CREATE TABLE recovery_codes (
    code_hash   TEXT PRIMARY KEY,
    identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX recovery_codes_by_identity ON recovery_codes (identity_id);

-- Browser sessions. The cookie holds a random secret; only its SHA-256 is stored (id).
-- stage: 'active' (signed in) or 'second_factor' (password checked, waiting for TOTP / passkey /
-- recovery code; such a row opens no page but the second-factor one).
-- pending: ceremony state between two requests (passkey challenge, TOTP seed being enrolled),
-- JSON, sealed where it holds a secret.
CREATE TABLE web_sessions (
    id           TEXT PRIMARY KEY,
    identity_id  TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    stage        TEXT NOT NULL CHECK (stage IN ('active', 'second_factor')),
    csrf         TEXT NOT NULL,
    methods      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    auth_at      BIGINT NOT NULL,
    mfa_at       BIGINT,
    address      TEXT NOT NULL DEFAULT '',
    user_agent   TEXT NOT NULL DEFAULT '',
    pending      TEXT
);
CREATE INDEX web_sessions_by_identity ON web_sessions (identity_id);

-- Passkey sign-in ceremonies that have no session yet (a challenge lives two minutes).
CREATE TABLE web_challenges (
    id          TEXT PRIMARY KEY,
    identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    state       TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
