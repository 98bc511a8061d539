//! SSH public keys registered to identities: what the gateway matches a verified signature to.

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::ids;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use sqlx::Row;

/// Key types accepted for sign-in.
const ALGORITHMS: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-256",
    "rsa-sha2-512",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A public key in OpenSSH `authorized_keys` form, checked for shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedKey {
    pub algorithm: String,
    /// Base64 of the key blob.
    pub blob: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub comment: String,
}

/// Parses `ALGORITHM BASE64 [COMMENT]`; the blob must be valid base64 and name the same algorithm.
pub fn parse(line: &str) -> Result<ParsedKey> {
    let mut parts = line.split_whitespace();
    let (Some(algorithm), Some(blob)) = (parts.next(), parts.next()) else {
        return Err(Error::invalid(
            "an SSH public key looks like `ssh-ed25519 AAAA... comment`",
        ));
    };
    if !ALGORITHMS.contains(&algorithm) {
        return Err(Error::invalid(format!(
            "unsupported SSH key type {algorithm:?}"
        )));
    }
    let bytes = STANDARD
        .decode(blob)
        .map_err(|_| Error::invalid("the SSH public key is not valid base64"))?;
    // The blob starts with the length-prefixed key type; rsa-sha2-* keys are stored as ssh-rsa.
    let inner = bytes
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|n| bytes.get(4..4 + n))
        .and_then(|t| std::str::from_utf8(t).ok())
        .ok_or_else(|| Error::invalid("the SSH public key blob is truncated"))?;
    let expected = if algorithm.starts_with("rsa-sha2-") {
        "ssh-rsa"
    } else {
        algorithm
    };
    if inner != expected {
        return Err(Error::invalid(format!(
            "the key says {algorithm:?} but its blob is {inner:?}"
        )));
    }
    Ok(ParsedKey {
        algorithm: inner.to_string(),
        blob: blob.to_string(),
        fingerprint: format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(&bytes))),
        comment: parts.collect::<Vec<_>>().join(" "),
    })
}

/// A registered key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshKey {
    pub id: String,
    pub identity_id: String,
    pub algorithm: String,
    pub public_key: String,
    pub fingerprint: String,
    pub comment: String,
    pub status: String,
    /// When it last signed an SSH login (kept to the minute); `None`: never.
    pub last_used_at_ms: Option<i64>,
}

/// Registers a key for an identity; audited as `ssh_key.add`. A key belongs to one identity only.
pub async fn add(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    username: &str,
    line: &str,
) -> Result<SshKey> {
    let parsed = parse(line)?;
    let identity = crate::identity::identities::by_username(tx, username)
        .await?
        .ok_or_else(|| Error::NotFound(format!("identity {username}")))?;
    let key = SshKey {
        id: ids::new_id(),
        identity_id: identity.id,
        algorithm: parsed.algorithm,
        public_key: parsed.blob,
        fingerprint: parsed.fingerprint,
        comment: parsed.comment,
        status: "active".into(),
        last_used_at_ms: None,
    };
    sqlx::query(
        "INSERT INTO ssh_keys (id, identity_id, algorithm, public_key, fingerprint, comment, status, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(key.id.as_str())
    .bind(key.identity_id.as_str())
    .bind(key.algorithm.as_str())
    .bind(key.public_key.as_str())
    .bind(key.fingerprint.as_str())
    .bind(key.comment.as_str())
    .bind(key.status.as_str())
    .bind(now_ms)
    .execute(&mut **tx)
    .await
    .map_err(|e| Error::from(e).on_conflict(|| format!("SSH key {} is already registered", key.fingerprint)))?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "ssh_key.add",
            format!("identity:{username}"),
        )
        .details(serde_json::json!({ "fingerprint": key.fingerprint, "algorithm": key.algorithm })),
    )
    .await?;
    Ok(key)
}

/// Removes one of an identity's keys by id; audited as `ssh_key.remove`.
pub async fn remove(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    username: &str,
    key_id: &str,
) -> Result<()> {
    let fp: Option<String> = sqlx::query_scalar(
        "DELETE FROM ssh_keys WHERE id = $1 AND identity_id = \
         (SELECT id FROM identities WHERE username = $2) RETURNING fingerprint",
    )
    .bind(key_id)
    .bind(username)
    .fetch_optional(&mut **tx)
    .await?;
    let fp = fp.ok_or_else(|| Error::NotFound(format!("SSH key {key_id} of {username}")))?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "ssh_key.remove",
            format!("identity:{username}"),
        )
        .details(serde_json::json!({ "fingerprint": fp })),
    )
    .await?;
    Ok(())
}

/// The identity id owning an active key with this fingerprint.
pub async fn owner_of(conn: &mut AnyConnection, fingerprint: &str) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT identity_id FROM ssh_keys WHERE fingerprint = $1 AND status = 'active'",
    )
    .bind(fingerprint)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| r.try_get(0).map_err(Error::from)).transpose()
}

/// Records that the key `fingerprint` signed a login now (moved only when the stored time is a
/// minute old: fewer writes). Unused keys are a finding of the access reviews.
pub async fn used(conn: &mut AnyConnection, fingerprint: &str, now_ms: i64) -> Result<()> {
    sqlx::query(
        "UPDATE ssh_keys SET last_used_at = $2 WHERE fingerprint = $1 \
         AND (last_used_at IS NULL OR last_used_at <= $3)",
    )
    .bind(fingerprint)
    .bind(now_ms)
    .bind(now_ms - crate::identity::tokens::LAST_USED_STEP_MS)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Keys of an identity.
pub async fn of_identity(conn: &mut AnyConnection, identity_id: &str) -> Result<Vec<SshKey>> {
    let rows = sqlx::query(
        "SELECT id, identity_id, algorithm, public_key, fingerprint, comment, status, \
         last_used_at FROM ssh_keys WHERE identity_id = $1 ORDER BY created_at, id",
    )
    .bind(identity_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SshKey {
                id: r.try_get(0)?,
                identity_id: r.try_get(1)?,
                algorithm: r.try_get(2)?,
                public_key: r.try_get(3)?,
                fingerprint: r.try_get(4)?,
                comment: r.try_get(5)?,
                status: r.try_get(6)?,
                last_used_at_ms: r.try_get(7)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated with `ssh-keygen -t ed25519 -N '' -C alice@laptop`; fingerprint from `ssh-keygen -l`.
    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINIA111t8AegBYeJ2SJ8AJ8MPbP8SzqkdjxX3NOENKGg alice@laptop";
    const ED_FP: &str = "SHA256:2B53fzy3qHcQYvVpbKOmzZuWAd+72ogJu4gdACUn5Oc";

    #[test]
    fn parses_openssh_keys_like_ssh_keygen() {
        let k = parse(ED).unwrap();
        assert_eq!(k.algorithm, "ssh-ed25519");
        assert_eq!(k.comment, "alice@laptop");
        assert_eq!(k.fingerprint, ED_FP);
    }

    #[test]
    fn rejects_malformed_keys() {
        assert!(parse("").is_err());
        assert!(parse("ssh-ed25519").is_err());
        assert!(parse("ssh-dss AAAAB3NzaC1kc3M=").is_err());
        assert!(parse("ssh-ed25519 !!!").is_err());
        // Blob of another type under an ed25519 label.
        assert!(parse("ssh-ed25519 AAAAB3NzaC1yc2E=").is_err());
        // Truncated blob.
        assert!(parse("ssh-ed25519 AAAA").is_err());
    }
}
