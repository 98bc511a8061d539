-- Private keys vaulted per target and login (the alternative to the user CA): sealed with
-- AES-256-GCM, never in clear; the public half kept to show which key it is.
CREATE TABLE target_credentials (
    target_id   TEXT NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    login       TEXT NOT NULL,
    private_key TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (target_id, login)
);
