//! Reading the whole log in order, fast and consistently. The database aggregates each page of
//! events into one JSON text, so a million events cross the driver as a hundred values instead
//! of nine million; a task fetches the next page while the caller checks the current one. All
//! pages are read in one read-only transaction, so the chain head, the checkpoints and the
//! events form one snapshot even while Gatehouse keeps appending.

use super::checkpoint::{self, Checkpoint};
use super::{Event, SELECT_EVENTS, event_from_row};
use crate::error::{Error, Result};
use crate::store::{Backend, Store};
use serde::Deserialize;
use sqlx::Row as _;
use sqlx::{Any, AssertSqlSafe};
use tokio::sync::mpsc;

/// Events per page (a page is a few MB of JSON).
pub const PAGE: i64 = 10_000;

/// One stored row: an event, or a row whose columns cannot be read as an event (for example a
/// text where a number belongs), which is itself evidence of tampering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    Event(Event),
    Unreadable { seq: i64, message: String },
}

/// A consistent view of the log, read page by page.
#[derive(Debug)]
pub struct Snapshot {
    /// `audit_head.seq`: how many events the chain head says there are.
    pub head: i64,
    /// The highest stored seq (0 when empty).
    pub last_seq: i64,
    /// Stored checkpoints, smallest first.
    pub checkpoints: Vec<Checkpoint>,
    pages: mpsc::Receiver<Result<Vec<Row>>>,
}

impl Snapshot {
    /// Opens the snapshot and starts fetching pages.
    pub async fn open(store: &Store) -> Result<Self> {
        let backend = store.backend();
        let begin = match backend {
            Backend::Sqlite => "BEGIN",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        };
        let mut tx = store.pool().begin_with(begin).await?;
        let (head, _) = super::head(&mut tx).await?;
        let last_seq: Option<i64> = sqlx::query("SELECT MAX(seq) FROM audit_events")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let last_seq = last_seq.unwrap_or(0);
        let checkpoints = checkpoint::all(&mut tx).await?;
        // A page is parsed and checked while the database builds the next one; at most two
        // pages wait in the channel, so memory stays bounded whatever the log's length.
        let (send, pages) = mpsc::channel(2);
        tokio::spawn(async move {
            let mut lo = 0;
            let mut text = match last_seq > 0 {
                true => Some(fetch(&mut tx, backend, lo).await),
                false => None,
            };
            while let Some(current) = text.take() {
                let next_lo = lo + PAGE;
                let (next, parsed) = tokio::join!(
                    async {
                        match next_lo < last_seq {
                            true => Some(fetch(&mut tx, backend, next_lo).await),
                            false => None,
                        }
                    },
                    async { current.map(|t| t.as_deref().and_then(parse)) },
                );
                let page = match parsed {
                    Ok(Some(rows)) => Ok(rows),
                    Ok(None) => slow_page(&mut tx, lo, lo + PAGE).await,
                    Err(e) => Err(e),
                };
                let failed = page.is_err();
                if send.send(page).await.is_err() || failed {
                    break;
                }
                text = next;
                lo = next_lo;
            }
            let _ = tx.rollback().await;
        });
        Ok(Self {
            head,
            last_seq,
            checkpoints,
            pages,
        })
    }

    /// The next page in sequence order; `None` after the last.
    pub async fn next_page(&mut self) -> Option<Result<Vec<Row>>> {
        self.pages.recv().await
    }
}

#[derive(Deserialize)]
struct JsonRow(
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

/// The JSON text of the page `lo < seq <= lo + PAGE`. `Ok(None)` when the database could not
/// render it as text (a value that is not what the schema says): the page is then read row by row.
async fn fetch(
    tx: &mut sqlx::Transaction<'static, Any>,
    backend: Backend,
    lo: i64,
) -> Result<Option<String>> {
    let sql = match backend {
        // The rows come in key order from the subquery; `parse` sorts them anyway, so the result
        // does not depend on the aggregate keeping that order (and the database skips a sort).
        Backend::Sqlite => {
            "SELECT json_group_array(json_array(seq, time, actor, action, object, outcome, details, \
             prev_hash, hash)) FROM (SELECT * FROM audit_events WHERE seq > $1 AND seq <= $2 \
             ORDER BY seq)"
        }
        Backend::Postgres => {
            "SELECT json_agg(json_build_array(seq, time, actor, action, object, outcome, details, \
             prev_hash, hash))::text FROM (SELECT * FROM audit_events WHERE seq > $1 AND seq <= $2 \
             ORDER BY seq) AS page"
        }
    };
    match sqlx::query(sql)
        .bind(lo)
        .bind(lo + PAGE)
        .fetch_one(&mut **tx)
        .await
    {
        Ok(row) => Ok(row
            .try_get::<Option<String>, _>(0)
            .ok()
            .map(Option::unwrap_or_default)),
        Err(e) => match Error::from(e) {
            e @ Error::Unavailable(_) => Err(e),
            _ => Ok(None),
        },
    }
}

/// The events of a page's JSON text; `None` when a row does not have the shape of an event.
fn parse(text: &str) -> Option<Vec<Row>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    let mut rows: Vec<JsonRow> = serde_json::from_str(text).ok()?;
    rows.sort_by_key(|r| r.0);
    Some(
        rows.into_iter()
            .map(
                |JsonRow(
                    seq,
                    time_ms,
                    actor,
                    action,
                    object,
                    outcome,
                    details,
                    prev_hash,
                    hash,
                )| {
                    Row::Event(Event {
                        seq,
                        time_ms,
                        actor,
                        action,
                        object,
                        outcome,
                        details,
                        prev_hash,
                        hash,
                    })
                },
            )
            .collect(),
    )
}

/// Reads a page row by row, naming the rows that cannot be read.
async fn slow_page(tx: &mut sqlx::Transaction<'static, Any>, lo: i64, hi: i64) -> Result<Vec<Row>> {
    let seqs =
        sqlx::query("SELECT seq FROM audit_events WHERE seq > $1 AND seq <= $2 ORDER BY seq")
            .bind(lo)
            .bind(hi)
            .fetch_all(&mut **tx)
            .await?;
    let mut out = Vec::with_capacity(seqs.len());
    for s in seqs {
        let seq: i64 = s.try_get(0)?;
        let row = sqlx::query(AssertSqlSafe(format!("{SELECT_EVENTS} WHERE seq = $1")))
            .bind(seq)
            .fetch_one(&mut **tx)
            .await;
        out.push(
            match row.map_err(Error::from).and_then(|r| event_from_row(&r)) {
                Ok(ev) => Row::Event(ev),
                Err(e @ Error::Unavailable(_)) => return Err(e),
                Err(e) => Row::Unreadable {
                    seq,
                    message: format!("row cannot be read as an event ({e})"),
                },
            },
        );
    }
    Ok(out)
}
