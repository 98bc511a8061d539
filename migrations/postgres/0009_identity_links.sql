-- Single sign-on: which identity an OpenID provider's subject is. Identical in both dialects.
CREATE TABLE identity_links (
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX identity_links_by_identity ON identity_links (identity_id);
