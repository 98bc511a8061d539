//! Appending to the chain: the head row is locked, hashes are computed from the previous one,
//! and the rows and the new head are written in the caller's transaction.

use super::{Event, NewEvent, chain};
use crate::error::{Error, Result};
use crate::ledger::store::{Backend, Tx, backend_of};
use sqlx::{AnyConnection, AssertSqlSafe, Row};

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Sequence number of the last event appended.
    pub seq: i64,
}

/// Appends one event inside the caller's transaction.
/// Only inside a transaction: the event must commit or roll back with the change it records.
pub async fn append(tx: &mut Tx, now_ms: i64, event: NewEvent) -> Result<Appended> {
    if changes_access(&event.action) {
        tx.mark_access_changed();
    }
    let conn: &mut AnyConnection = tx;
    match backend_of(conn) {
        Backend::Postgres => append_one_pg(conn, now_ms, event).await,
        Backend::Sqlite => append_batch(tx, now_ms, vec![event]).await,
    }
}

/// SQLite: the chain head (event count, hash) as the caller read it inside this transaction,
/// which holds the write lock since `BEGIN IMMEDIATE`, so the first append reads nothing
/// itself. Ignored on PostgreSQL, where each append locks the head row.
pub(crate) fn known_head(tx: &mut Tx, seq: i64, hash: &str) -> Result<()> {
    if backend_of(tx) == Backend::Sqlite && tx.audit_head.is_none() {
        let hash = chain::parse_hash(hash)
            .ok_or_else(|| Error::Storage("audit_head holds a malformed hash".into()))?;
        tx.audit_head = Some((seq, hash));
    }
    Ok(())
}

/// The value with every object's keys in sorted order, whatever order the map type keeps (a
/// dependency may turn on serde_json's `preserve_order`): details are stored canonically.
fn sorted(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Whether an audited action may change a decision. Every change is audited, so deciding it here
/// means no repository function can forget to tell the caches; the default is "yes" (a spare
/// reload costs less than a stale allow).
fn changes_access(action: &str) -> bool {
    const INERT: &[&str] = &[
        "authorize",
        "token.",
        "setup.",
        "review.",
        "webhook.",
        "audit.",
        // Evidence taken out and recordings deleted past retention change no decision input.
        "report.",
        "recording.",
        "session.",
        "ssh.",
        // Browser sign-ins and app sessions change no decision input; caches of who is signed
        // in follow them through `Tx::mark_sessions_changed` instead of a catalog reload.
        "web.",
        "app.",
    ];
    !INERT.iter().any(|p| action.starts_with(p))
}

/// Rows per multi-row INSERT (9 parameters each; SQLite allows 32,766 per statement).
const ROWS_PER_INSERT: usize = 1000;

/// Appends several events inside the caller's transaction, in order, with one lock of the chain
/// head and multi-row inserts: the fast path for callers that produce events in bulk.
pub async fn append_batch(tx: &mut Tx, now_ms: i64, events: Vec<NewEvent>) -> Result<Appended> {
    if events.iter().any(|e| changes_access(&e.action)) {
        tx.mark_access_changed();
    }
    let n = i64::try_from(events.len()).map_err(|_| Error::invalid("too many events"))?;
    if n == 0 {
        return Err(Error::invalid("no events to append"));
    }
    let backend = backend_of(tx);
    // SQLite: the head read by this transaction's first append is kept in the transaction and
    // written once at commit (`Tx::commit`), so each later append is one INSERT. The first
    // statement is a write: it takes SQLite's write lock before the head is read.
    let cached = if backend == Backend::Sqlite {
        tx.audit_head.take()
    } else {
        None
    };
    let (last_seq, mut prev) = match cached {
        Some((seq, hash)) => (seq + n, hash),
        None => {
            // Locks the head row until the transaction ends: appends are serialised across
            // connections and, on PostgreSQL, across instances.
            let step = if backend == Backend::Sqlite { 0 } else { n };
            let conn: &mut AnyConnection = tx;
            let head = sqlx::query(
                "UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash",
            )
            .bind(step)
            .fetch_one(&mut *conn)
            .await?;
            let seq: i64 = head.try_get("seq")?;
            let head_hash: String = head.try_get("hash")?;
            let prev = chain::parse_hash(&head_hash)
                .ok_or_else(|| Error::Storage("audit_head holds a malformed hash".into()))?;
            (
                if backend == Backend::Sqlite {
                    seq + n
                } else {
                    seq
                },
                prev,
            )
        }
    };

    let mut rows = Vec::with_capacity(events.len());
    for (seq, ev) in (last_seq - n + 1..).zip(events) {
        let details = serde_json::to_string(&sorted(&ev.details))
            .map_err(|e| Error::invalid(format!("audit details: {e}")))?;
        let stored = Event {
            seq,
            time_ms: now_ms,
            outcome: ev.outcome.as_str().to_string(),
            actor: ev.actor,
            action: ev.action,
            object: ev.object,
            details,
            prev_hash: hex::encode(prev),
            hash: String::new(),
        };
        prev = chain::event_hash(&stored.content(), &prev);
        rows.push(Event {
            hash: hex::encode(prev),
            ..stored
        });
    }

    // SQLite: the rows wait in the transaction and are written at commit in the same statement
    // as the new head (`flush_sqlite`), a full batch at a time before that so memory stays
    // bounded. PostgreSQL: the new head hash is written with the last rows, in one statement
    // (one round trip fewer while the head row is locked).
    if backend == Backend::Sqlite {
        tx.audit_head = Some((last_seq, prev));
        tx.audit_rows.extend(rows);
        while tx.audit_rows.len() >= ROWS_PER_INSERT {
            let batch: Vec<Event> = tx.audit_rows.drain(..ROWS_PER_INSERT).collect();
            let conn: &mut AnyConnection = tx;
            bind_rows(
                sqlx::query(AssertSqlSafe(insert_sql(batch.len(), backend, false))),
                &batch,
            )
            .execute(&mut *conn)
            .await?;
        }
        return Ok(Appended { seq: last_seq });
    }
    let head_hash = hex::encode(prev);
    let conn: &mut AnyConnection = tx;
    let chunks: Vec<&[Event]> = rows.chunks(ROWS_PER_INSERT).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let with_head = i + 1 == chunks.len();
        let mut q = bind_rows(
            sqlx::query(AssertSqlSafe(insert_sql(chunk.len(), backend, with_head))),
            chunk,
        );
        if with_head {
            q = q.bind(head_hash.as_str());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(Appended { seq: last_seq })
}

pub(crate) type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds the nine columns of each row, in `insert_sql`'s order.
pub(crate) fn bind_rows<'q>(mut q: Query<'q>, rows: &'q [Event]) -> Query<'q> {
    for r in rows {
        q = q
            .bind(r.seq)
            .bind(r.time_ms)
            .bind(r.actor.as_str())
            .bind(r.action.as_str())
            .bind(r.object.as_str())
            .bind(r.outcome.as_str())
            .bind(r.details.as_str())
            .bind(r.prev_hash.as_str())
            .bind(r.hash.as_str());
    }
    q
}

/// `INSERT ... VALUES ($1..$9), ($10..$18), ...` for `rows` rows; placeholders only, no data.
/// SQLite gets anonymous `?` placeholders: its driver looks every named one up in a list, which
/// makes a statement with thousands of `$N` quadratic. With `set_head` (PostgreSQL), the
/// statement also sets the head hash from one more parameter.
pub(crate) fn insert_sql(rows: usize, backend: Backend, set_head: bool) -> String {
    let mut sql = String::new();
    if set_head {
        sql.push_str("WITH appended AS (");
    }
    sql.push_str(
        "INSERT INTO audit_events \
         (seq, time, actor, action, object, outcome, details, prev_hash, hash) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..9 {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => sql.push_str(&format!("${}", r * 9 + c + 1)),
            }
        }
        sql.push(')');
    }
    if set_head {
        sql.push_str(&format!(
            ") UPDATE audit_head SET hash = ${} WHERE id = 1",
            rows * 9 + 1
        ));
    }
    sql
}

/// One event on PostgreSQL in one statement: lock the head, hash, insert, move the head. The
/// hash is computed by the database with the encoding of `chain::event_hash` (docs/audit.md);
/// `audit verify` recomputes it in Rust, and the storage suite checks both agree. One round trip
/// instead of two while the head row is locked.
const APPEND_ONE_PG: &str = "WITH head AS (SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE), \
    ev AS (SELECT head.seq + 1 AS seq, head.hash AS prev_hash, encode(sha256( \
        decode('67617465686f7573652e61756469742e763100', 'hex') \
        || int8send(head.seq + 1) || int8send($1::bigint) \
        || int4send(octet_length(convert_to($2, 'UTF8'))) || convert_to($2, 'UTF8') \
        || int4send(octet_length(convert_to($3, 'UTF8'))) || convert_to($3, 'UTF8') \
        || int4send(octet_length(convert_to($4, 'UTF8'))) || convert_to($4, 'UTF8') \
        || int4send(octet_length(convert_to($5, 'UTF8'))) || convert_to($5, 'UTF8') \
        || int4send(octet_length(convert_to($6, 'UTF8'))) || convert_to($6, 'UTF8') \
        || decode(head.hash, 'hex')), 'hex') AS hash FROM head), \
    ins AS (INSERT INTO audit_events (seq, time, actor, action, object, outcome, details, prev_hash, hash) \
        SELECT ev.seq, $1, $2, $3, $4, $5, $6, ev.prev_hash, ev.hash FROM ev) \
    UPDATE audit_head SET seq = ev.seq, hash = ev.hash FROM ev WHERE audit_head.id = 1 \
    RETURNING audit_head.seq";

async fn append_one_pg(conn: &mut AnyConnection, now_ms: i64, event: NewEvent) -> Result<Appended> {
    let details = serde_json::to_string(&sorted(&event.details))
        .map_err(|e| Error::invalid(format!("audit details: {e}")))?;
    let row = sqlx::query(APPEND_ONE_PG)
        .bind(now_ms)
        .bind(event.actor)
        .bind(event.action)
        .bind(event.object)
        .bind(event.outcome.as_str())
        .bind(details)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Appended {
        seq: row.try_get(0)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_numbers_placeholders_across_rows() {
        let sql = insert_sql(2, Backend::Postgres, false);
        assert!(sql.ends_with("($1, $2, $3, $4, $5, $6, $7, $8, $9), ($10, $11, $12, $13, $14, $15, $16, $17, $18)"), "{sql}");
        let sql = insert_sql(1, Backend::Postgres, true);
        assert!(sql.starts_with("WITH appended AS (INSERT"), "{sql}");
        assert!(
            sql.ends_with("$9)) UPDATE audit_head SET hash = $10 WHERE id = 1"),
            "{sql}"
        );
        let sql = insert_sql(2, Backend::Sqlite, false);
        assert!(
            sql.ends_with("(?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            "{sql}"
        );
    }
}
