//! Signed checkpoints: "the log had `size` events and the hash of event `size` was `root`",
//! signed with the Gatehouse key. Stored in the database and printed as text an auditor keeps;
//! a kept checkpoint later proves the log was neither rewritten nor truncated below it.

use crate::clock::format_ms;
use crate::error::{Error, Result};
use crate::keys::{PublicKey, SigningKeyPair};
use crate::ledger::store::Store;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sqlx::AnyConnection;
use sqlx::Row;

const MAGIC: &str = "gatehouse-audit-checkpoint";

/// A signed statement about the head of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Number of events covered (the seq of the last one).
    pub size: i64,
    /// Lower-case hex hash of event `size`.
    pub root_hash: String,
    /// When it was signed, epoch milliseconds.
    pub time_ms: i64,
    /// The key that signed it.
    pub key: PublicKey,
    /// Ed25519 signature over [`Checkpoint::payload`].
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// The exact bytes that are signed.
    pub fn payload(size: i64, root_hash: &str, time_ms: i64, key: &PublicKey) -> String {
        format!(
            "{MAGIC}: v1\nsize: {size}\nroot: {root_hash}\ntime: {}\nkey: {key}\n",
            format_ms(time_ms)
        )
    }

    /// Signs a checkpoint of the given head.
    pub fn sign(size: i64, root_hash: &str, time_ms: i64, signer: &SigningKeyPair) -> Self {
        let key = signer.public();
        let root_hash = root_hash.to_ascii_lowercase();
        let signature = signer.sign(Self::payload(size, &root_hash, time_ms, &key).as_bytes());
        Self {
            size,
            root_hash,
            time_ms,
            key,
            signature: signature.to_vec(),
        }
    }

    /// True when the signature is valid and made by `trusted`.
    pub fn signed_by(&self, trusted: &PublicKey) -> bool {
        self.key == *trusted
            && trusted.verify(
                Self::payload(self.size, &self.root_hash, self.time_ms, &self.key).as_bytes(),
                &self.signature,
            )
    }

    /// The text an auditor keeps.
    pub fn to_text(&self) -> String {
        format!(
            "# Gatehouse audit checkpoint. Keep it: `gatehouse audit verify --checkpoint FILE\n\
             # --public-key KEY` proves the log still holds these events, unchanged.\n{}signature: {}\n",
            Self::payload(self.size, &self.root_hash, self.time_ms, &self.key),
            B64.encode(&self.signature)
        )
    }

    /// Reads the text written by [`Checkpoint::to_text`]. Errors name the line.
    pub fn parse_text(text: &str) -> Result<Self> {
        let mut fields: std::collections::HashMap<&str, (usize, &str)> = Default::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once(':').ok_or_else(|| {
                Error::invalid(format!("checkpoint line {}: expected `name: value`", i + 1))
            })?;
            if fields.insert(k.trim(), (i + 1, v.trim())).is_some() {
                return Err(Error::invalid(format!(
                    "checkpoint line {}: `{}` given twice",
                    i + 1,
                    k.trim()
                )));
            }
        }
        let get = |k: &str| {
            fields
                .get(k)
                .copied()
                .ok_or_else(|| Error::invalid(format!("checkpoint has no `{k}:` line")))
        };
        let bad = |(line, _): (usize, &str), what: &str| {
            Error::invalid(format!("checkpoint line {line}: {what}"))
        };
        let magic = get(MAGIC)?;
        if magic.1 != "v1" {
            return Err(bad(magic, "unsupported checkpoint version"));
        }
        let size_f = get("size")?;
        let size: i64 = size_f
            .1
            .parse()
            .map_err(|_| bad(size_f, "size is not a number"))?;
        let root_f = get("root")?;
        if crate::ledger::audit::chain::parse_hash(root_f.1).is_none() {
            return Err(bad(root_f, "root is not a 64-digit hex hash"));
        }
        let time_f = get("time")?;
        let time_ms = chrono::DateTime::parse_from_rfc3339(time_f.1)
            .map_err(|_| bad(time_f, "time is not an RFC 3339 time"))?
            .timestamp_millis();
        let key_f = get("key")?;
        let key: PublicKey = key_f
            .1
            .parse()
            .map_err(|e: Error| bad(key_f, &e.to_string()))?;
        let sig_f = get("signature")?;
        let signature = B64
            .decode(sig_f.1)
            .map_err(|_| bad(sig_f, "signature is not base64"))?;
        Ok(Self {
            size,
            root_hash: root_f.1.to_ascii_lowercase(),
            time_ms,
            key,
            signature,
        })
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Checkpoint> {
    let key: String = row.try_get("key_id")?;
    let sig: String = row.try_get("signature")?;
    Ok(Checkpoint {
        size: row.try_get("size")?,
        root_hash: row.try_get("root_hash")?,
        time_ms: row.try_get("created_at")?,
        key: key.parse()?,
        signature: B64
            .decode(sig)
            .map_err(|_| Error::Storage("stored checkpoint signature is not base64".into()))?,
    })
}

const SELECT: &str = "SELECT size, root_hash, created_at, key_id, signature FROM audit_checkpoints";

/// Every stored checkpoint, smallest first.
pub async fn all(conn: &mut AnyConnection) -> Result<Vec<Checkpoint>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY size")))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The newest stored checkpoint.
pub async fn latest(conn: &mut AnyConnection) -> Result<Option<Checkpoint>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} ORDER BY size DESC LIMIT 1"
    )))
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Signs and stores a checkpoint of the current head unless the newest one already covers it.
/// Returns the newest checkpoint afterwards (`None` while the log is empty).
pub async fn create(
    store: &Store,
    now_ms: i64,
    signer: &SigningKeyPair,
) -> Result<Option<Checkpoint>> {
    let mut conn = store.pool().acquire().await?;
    let Some((size, root)) = crate::ledger::audit::last_event(&mut conn).await? else {
        return Ok(None);
    };
    if let Some(cp) = latest(&mut conn).await?
        && cp.size >= size
    {
        return Ok(Some(cp));
    }
    drop(conn);
    let cp = Checkpoint::sign(size, &root, now_ms, signer);
    let mut tx = store.begin().await?;
    sqlx::query(
        "INSERT INTO audit_checkpoints (size, root_hash, created_at, key_id, signature) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (size) DO NOTHING",
    )
    .bind(cp.size)
    .bind(cp.root_hash.as_str())
    .bind(cp.time_ms)
    .bind(cp.key.to_string())
    .bind(B64.encode(&cp.signature))
    .execute(&mut *tx)
    .await?;
    let newest = latest(&mut tx).await?;
    tx.commit().await?;
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> (tempfile::TempDir, SigningKeyPair) {
        let dir = tempfile::tempdir().unwrap();
        let (k, _) = SigningKeyPair::load_or_create(&dir.path().join("k.pem")).unwrap();
        (dir, k)
    }

    #[test]
    fn text_round_trip_keeps_the_signature_valid() {
        let (_d, k) = signer();
        let cp = Checkpoint::sign(42, &"AB".repeat(32), 1_764_000_000_123, &k);
        let text = cp.to_text();
        let back = Checkpoint::parse_text(&text).unwrap();
        assert_eq!(back, cp);
        assert!(back.signed_by(&k.public()));
    }

    #[test]
    fn edited_text_fails_the_signature() {
        let (_d, k) = signer();
        let cp = Checkpoint::sign(42, &"ab".repeat(32), 1_764_000_000_123, &k);
        let forged = cp.to_text().replace("size: 42", "size: 41");
        let back = Checkpoint::parse_text(&forged).unwrap();
        assert!(!back.signed_by(&k.public()));
        let (_d2, other) = signer();
        assert!(!cp.signed_by(&other.public()));
    }

    #[test]
    fn malformed_text_names_the_line() {
        let e = Checkpoint::parse_text("gatehouse-audit-checkpoint: v1\nsize: lots\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = Checkpoint::parse_text("hello").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
