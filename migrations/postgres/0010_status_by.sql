-- Who last set an identity's status (the audit actor: `identity:alice`, `scim:okta`, `cli`, ...),
-- so a provisioning client never undoes an administrator's suspension. Identical in both dialects.
ALTER TABLE identities ADD COLUMN status_by TEXT NOT NULL DEFAULT '';
