//! Blind writes and SQLite's commit batch. A [`Write`] is one INSERT or UPDATE with its
//! arguments, run now ([`Tx::write`]) or, when nothing in the transaction reads it back, sent
//! with the commit ([`Tx::write_later`]): on SQLite every waiting write, the audit rows, the
//! chain head and the access version go to the database thread as one multi-statement round
//! trip, where each statement would otherwise cost one.

use super::{Backend, Tx};
use crate::error::{Error, Result};
use crate::ledger::audit::Event;
use sqlx::{AnyConnection, AssertSqlSafe};

/// An argument of a [`Write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
}

/// One statement with `$1`-style placeholders and its arguments.
#[derive(Debug, Clone)]
pub struct Write {
    sql: &'static str,
    args: Vec<Arg>,
    conflict: Option<String>,
}

impl Write {
    pub fn new(sql: &'static str) -> Self {
        Write {
            sql,
            args: Vec::new(),
            conflict: None,
        }
    }

    pub fn int(mut self, v: impl Into<Option<i64>>) -> Self {
        self.args.push(Arg::Int(v.into()));
        self
    }

    pub fn text(mut self, v: impl Into<String>) -> Self {
        self.args.push(Arg::Text(Some(v.into())));
        self
    }

    pub fn opt_text(mut self, v: Option<impl Into<String>>) -> Self {
        self.args.push(Arg::Text(v.map(Into::into)));
        self
    }

    /// The message of the `Conflict` error a unique violation becomes.
    pub fn on_conflict(mut self, msg: impl Into<String>) -> Self {
        self.conflict = Some(msg.into());
        self
    }

    fn error(&self, e: sqlx::Error) -> Error {
        let e = Error::from(e);
        match &self.conflict {
            Some(msg) => e.on_conflict(|| msg.clone()),
            None => e,
        }
    }

    /// The statement with anonymous `?` placeholders (SQLite numbers those across the
    /// statements of one batch) and its arguments in placeholder order.
    fn anonymous(&self) -> Result<(String, Vec<&Arg>)> {
        let mut sql = String::with_capacity(self.sql.len());
        let mut args = Vec::with_capacity(self.args.len());
        let mut chars = self.sql.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            if c != '$' {
                sql.push(c);
                continue;
            }
            let mut n = 0usize;
            while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
                n = n * 10 + (d as usize - '0' as usize);
                chars.next();
            }
            let arg = n
                .checked_sub(1)
                .and_then(|i| self.args.get(i))
                .ok_or_else(|| Error::Storage(format!("placeholder ${n} has no argument")))?;
            sql.push('?');
            args.push(arg);
        }
        Ok((sql, args))
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bind<'q>(q: Query<'q>, a: &'q Arg) -> Query<'q> {
    match a {
        Arg::Int(v) => q.bind(*v),
        Arg::Text(v) => q.bind(v.as_deref()),
    }
}

impl Tx {
    /// Runs a write now; returns the rows it changed.
    pub async fn write(&mut self, w: Write) -> Result<u64> {
        let q = w.args.iter().fold(sqlx::query(w.sql), |q, a| bind(q, a));
        match q.execute(&mut *self.tx).await {
            Ok(done) => Ok(done.rows_affected()),
            Err(e) => Err(w.error(e)),
        }
    }

    /// A write nothing in this transaction reads back: on SQLite it waits and goes with the
    /// commit (a constraint it breaks fails the commit); on PostgreSQL it runs now.
    pub async fn write_later(&mut self, w: Write) -> Result<()> {
        match self.backend {
            Backend::Sqlite => self.later.push(w),
            Backend::Postgres => {
                self.write(w).await?;
            }
        }
        Ok(())
    }
}

/// SQLite, at commit: the waiting writes, the transaction's audit rows, the new chain head and
/// (when `bump_access`) the access version, in one round trip.
pub(super) async fn flush_sqlite(
    conn: &mut AnyConnection,
    writes: &[Write],
    rows: &[Event],
    head: Option<(i64, [u8; 32])>,
    bump_access: bool,
) -> Result<()> {
    let mut sql = String::new();
    let mut args: Vec<&Arg> = Vec::new();
    for w in writes {
        let (s, a) = w.anonymous()?;
        sql.push_str(&s);
        sql.push_str("; ");
        args.extend(a);
    }
    if !rows.is_empty() {
        sql.push_str(&crate::ledger::audit::insert_sql(
            rows.len(),
            Backend::Sqlite,
            false,
        ));
        sql.push_str("; ");
    }
    let head_hash = head.map(|(seq, hash)| (seq, hex::encode(hash)));
    if head_hash.is_some() {
        sql.push_str("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1; ");
    }
    if bump_access {
        sql.push_str("UPDATE access_version SET version = version + 1 WHERE id = 1; ");
    }
    if sql.is_empty() {
        return Ok(());
    }
    let mut q = args
        .into_iter()
        .fold(sqlx::query(AssertSqlSafe(sql)), |q, a| bind(q, a));
    q = crate::ledger::audit::bind_rows(q, rows);
    if let Some((seq, hash)) = &head_hash {
        q = q.bind(*seq).bind(hash.as_str());
    }
    match q.execute(conn).await {
        Ok(_) => Ok(()),
        // A unique violation here is a waiting write's: name it if only one could be.
        Err(e) => Err(match writes {
            [w] => w.error(e),
            _ => Error::from(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_anonymous_in_argument_order() {
        let w = Write::new("UPDATE t SET a = $2, b = $1 WHERE c = $2 AND d = $10")
            .int(1)
            .text("two")
            .int(3)
            .int(4)
            .int(5)
            .int(6)
            .int(7)
            .int(8)
            .int(9)
            .opt_text(None::<String>);
        let (sql, args) = w.anonymous().unwrap();
        assert_eq!(sql, "UPDATE t SET a = ?, b = ? WHERE c = ? AND d = ?");
        assert_eq!(
            args,
            vec![
                &Arg::Text(Some("two".into())),
                &Arg::Int(Some(1)),
                &Arg::Text(Some("two".into())),
                &Arg::Text(None)
            ]
        );
    }

    #[test]
    fn a_placeholder_without_argument_is_an_error() {
        assert!(Write::new("SELECT $2").int(1).anonymous().is_err());
        assert!(Write::new("SELECT $").anonymous().is_err());
    }
}
