-- SCIM 2.0 service provider. Identical in both dialects.
-- A SCIM client (Entra, Okta, an HR system) authenticates with its own bearer token; only the
-- token's SHA-256 is stored.
CREATE TABLE scim_clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
-- The SCIM document of each User and Group as the client wrote it (password never stored),
-- linked to the identity or group it provisions. name_key is the lower-cased userName or
-- displayName (unique per kind, as RFC 7643 requires of userName).
CREATE TABLE scim_resources (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name_key TEXT NOT NULL,
    external_id TEXT,
    identity_id TEXT,
    group_id TEXT,
    document TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    modified_at BIGINT NOT NULL,
    client TEXT NOT NULL
);
CREATE UNIQUE INDEX scim_resources_by_name ON scim_resources (kind, name_key);
CREATE INDEX scim_resources_by_external_id ON scim_resources (kind, external_id);
CREATE INDEX scim_resources_by_identity ON scim_resources (identity_id);
CREATE INDEX scim_resources_by_group ON scim_resources (group_id);
