//! Recovery codes: ten single-use codes shown once, kept as SHA-256 hashes, that stand in for a
//! lost second factor. Generating a new set replaces the old one.

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::ledger::audit::{self, NewEvent, Outcome};
use crate::ledger::store::Tx;
use crate::secrets;
use sqlx::{AnyConnection, Row};

/// How many codes a set holds.
pub const COUNT: usize = 10;

/// Unambiguous characters (no 0/O, 1/I/L).
const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn one() -> Result<String> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| Error::Key(format!("random generator: {e}")))?;
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    Ok(chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

/// Replaces `username`'s recovery codes with a new set and returns it (shown once); audited as
/// `mfa.recovery_codes` without the codes.
pub async fn generate(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    identity_id: &str,
    username: &str,
) -> Result<Vec<String>> {
    sqlx::query("DELETE FROM recovery_codes WHERE identity_id = $1")
        .bind(identity_id)
        .execute(&mut **tx)
        .await?;
    let mut codes = Vec::with_capacity(COUNT);
    for _ in 0..COUNT {
        let code = one()?;
        sqlx::query(
            "INSERT INTO recovery_codes (code_hash, identity_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(secrets::hash(&format!(
            "{identity_id}:{}",
            normalise(&code)
        )))
        .bind(identity_id)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
        codes.push(code);
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "mfa.recovery_codes",
            format!("identity:{username}"),
        )
        .details(serde_json::json!({ "count": COUNT })),
    )
    .await?;
    Ok(codes)
}

/// Uses a recovery code: true (and the code is spent) if it is one of the identity's unused
/// codes. Audited as `mfa.recovery_code` either way.
pub async fn redeem(
    tx: &mut Tx,
    now_ms: i64,
    identity_id: &str,
    username: &str,
    code: &str,
) -> Result<bool> {
    let code = normalise(code);
    let ok = if code.len() == 12 {
        sqlx::query(
            "UPDATE recovery_codes SET used_at = $3 \
             WHERE code_hash = $1 AND identity_id = $2 AND used_at IS NULL",
        )
        .bind(secrets::hash(&format!("{identity_id}:{code}")))
        .bind(identity_id)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1
    } else {
        false
    };
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            format!("identity:{username}"),
            "mfa.recovery_code",
            format!("identity:{username}"),
        )
        .outcome(if ok {
            Outcome::Success
        } else {
            Outcome::Failure
        }),
    )
    .await?;
    Ok(ok)
}

/// How many unused codes an identity has left.
pub async fn remaining(conn: &mut AnyConnection, identity_id: &str) -> Result<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) FROM recovery_codes WHERE identity_id = $1 AND used_at IS NULL",
    )
    .bind(identity_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grouped_and_normalised() {
        let c = one().unwrap();
        assert_eq!(c.len(), 14);
        assert_eq!(normalise(&c.to_lowercase()).len(), 12);
        assert_eq!(normalise(" abcd-efgh-jkmn "), "ABCDEFGHJKMN");
    }
}
