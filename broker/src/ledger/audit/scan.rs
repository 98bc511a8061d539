//! Reading the whole log in order, fast and consistently. All pages are read in one read-only
//! transaction, so the chain head, the checkpoints and the events form one snapshot even while
//! Gatehouse keeps appending; a task reads ahead of the caller, at most two pages, so memory
//! stays bounded however long the log.
//!
//! How a page is read depends on the backend (measured in bench/audit.sh):
//! - SQLite: the sqlx driver hands every value across threads one by one, which costs more than
//!   everything else together. So SQLite aggregates each page into one JSON text, and the next
//!   page is built while the current one is parsed.
//! - PostgreSQL: rows stream over the socket cheaply, while `json_agg` is slow; rows are read
//!   as they come and cut into pages.

use super::checkpoint::{self, Checkpoint};
use super::{Event, SELECT_EVENTS, event_from_row};
use crate::error::{Error, Result};
use crate::ledger::store::{Backend, Store};
use futures_util::StreamExt;
use sqlx::Row as _;
use sqlx::{Any, AssertSqlSafe};
use tokio::sync::mpsc;

/// Events per page.
pub const PAGE: i64 = 10_000;

/// One stored row: an event, or a row whose columns cannot be read as an event (for example a
/// text where a number belongs), which is itself evidence of tampering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    Event(Event),
    Unreadable { seq: i64, message: String },
}

type Tx = sqlx::Transaction<'static, Any>;
type Pages = mpsc::Sender<Result<Vec<Row>>>;

/// A consistent view of the log, read page by page.
#[derive(Debug)]
pub struct Snapshot {
    /// `audit_head.seq`: how many events the chain head says there are.
    pub head: i64,
    /// `audit_head.hash`: what the chain head says the last event's hash is.
    pub head_hash: String,
    /// How many rows `audit_events` holds, whatever their seq.
    pub rows: i64,
    /// Stored checkpoints, smallest first.
    pub checkpoints: Vec<Checkpoint>,
    pages: mpsc::Receiver<Result<Vec<Row>>>,
}

impl Snapshot {
    /// Opens the snapshot and starts reading pages.
    pub async fn open(store: &Store) -> Result<Self> {
        let backend = store.backend();
        let begin = match backend {
            Backend::Sqlite => "BEGIN",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        };
        let mut tx = store.pool().begin_with(begin).await?;
        let (head, head_hash) = super::head(&mut tx).await?;
        let rows: i64 = sqlx::query("SELECT COUNT(*) FROM audit_events")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let checkpoints = checkpoint::all(&mut tx).await?;
        let (send, pages) = mpsc::channel(2);
        tokio::spawn(async move {
            let read = match backend {
                Backend::Sqlite => json_pages(&mut tx, &send).await,
                Backend::Postgres => streamed_pages(&mut tx, &send).await,
            };
            if let Err(e) = read {
                let _ = send.send(Err(e)).await;
            }
            let _ = tx.rollback().await;
        });
        Ok(Self {
            head,
            head_hash,
            rows,
            checkpoints,
            pages,
        })
    }

    /// The next page in sequence order; `None` after the last.
    pub async fn next_page(&mut self) -> Option<Result<Vec<Row>>> {
        self.pages.recv().await
    }
}

/// One page as SQLite renders it.
struct JsonPage {
    /// The rows as a JSON array; `None` if the database could not render them as text.
    text: Option<String>,
    /// The highest seq in the page, where the next page starts; `None` if unreadable.
    last: Option<i64>,
    /// Rows in the page.
    count: i64,
}

/// SQLite: pages by key (`seq > after`, ascending, `PAGE` rows); page `k + 1` is aggregated by
/// the database while page `k` is parsed here.
async fn json_pages(tx: &mut Tx, send: &Pages) -> Result<()> {
    let mut after = i64::MIN;
    let mut current = fetch_json(tx, after).await?;
    while current.count > 0 {
        let (next, parsed) = tokio::join!(
            async {
                match current.last {
                    Some(last) => Some(fetch_json(tx, last).await),
                    None => None,
                }
            },
            async { current.text.as_deref().and_then(parse) },
        );
        let (page, last) = match (parsed, current.last) {
            (Some(rows), Some(last)) => (rows, last),
            // Something in this page is not what the schema says (only tampering does that):
            // read it row by row to name the row.
            _ => row_by_row(tx, after).await?,
        };
        if send.send(Ok(page)).await.is_err() || last <= after {
            return Ok(());
        }
        current = match next {
            Some(next) if current.last == Some(last) => next?,
            _ => fetch_json(tx, last).await?,
        };
        after = last;
    }
    Ok(())
}

/// Page `seq > after` as one JSON text. Errors other than a lost database become an unreadable
/// page, which is then read row by row.
async fn fetch_json(tx: &mut Tx, after: i64) -> Result<JsonPage> {
    // The subquery yields rows in key order; `parse` sorts them anyway, so the result does not
    // depend on the aggregate keeping that order.
    let sql = "SELECT json_group_array(json_array(seq, time, actor, action, object, outcome, \
               details, prev_hash, hash)), MAX(seq), COUNT(*) FROM (SELECT * FROM audit_events \
               WHERE seq > $1 ORDER BY seq LIMIT $2)";
    match sqlx::query(sql)
        .bind(after)
        .bind(PAGE)
        .fetch_one(&mut **tx)
        .await
    {
        Ok(row) => Ok(JsonPage {
            text: row.try_get::<Option<String>, _>(0).ok().flatten(),
            last: row.try_get::<Option<i64>, _>(1).ok().flatten(),
            count: row.try_get::<i64, _>(2).unwrap_or(1),
        }),
        Err(e) => match Error::from(e) {
            e @ Error::Unavailable(_) => Err(e),
            _ => Ok(JsonPage {
                text: None,
                last: None,
                count: 1,
            }),
        },
    }
}

/// The events of a page's JSON text (an array of `[seq, time, actor, ...]` arrays, the field
/// order of [`Event`]); `None` when a row does not have the shape of an event.
fn parse(text: &str) -> Option<Vec<Row>> {
    let mut events: Vec<Event> = serde_json::from_str(text).ok()?;
    events.sort_by_key(|e| e.seq);
    Some(events.into_iter().map(Row::Event).collect())
}

/// Reads page `seq > after` one row at a time, naming the rows that cannot be read (a text
/// that is not UTF-8 fails the whole page, so rows are fetched singly); returns them and the
/// highest seq read.
async fn row_by_row(tx: &mut Tx, after: i64) -> Result<(Vec<Row>, i64)> {
    let seqs = sqlx::query("SELECT seq FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2")
        .bind(after)
        .bind(PAGE)
        .fetch_all(&mut **tx)
        .await?;
    let mut last = after;
    let mut out = Vec::with_capacity(seqs.len());
    for s in seqs {
        let seq: i64 = s.try_get(0)?;
        last = last.max(seq);
        let row = sqlx::query(AssertSqlSafe(format!("{SELECT_EVENTS} WHERE seq = $1")))
            .bind(seq)
            .fetch_one(&mut **tx)
            .await;
        out.push(read_row(row.map_err(Error::from), seq)?);
    }
    Ok((out, last))
}

/// An event from a fetched row; a row that does not decode is `Unreadable`, a lost database
/// is an error.
fn read_row(row: Result<sqlx::any::AnyRow>, seq: i64) -> Result<Row> {
    match row.and_then(|r| event_from_row(&r)) {
        Ok(ev) => Ok(Row::Event(ev)),
        Err(e @ Error::Unavailable(_)) => Err(e),
        Err(e) => Ok(Row::Unreadable {
            seq,
            message: format!("row cannot be read as an event ({e})"),
        }),
    }
}

/// PostgreSQL: one ordered query whose rows are cut into pages as they arrive.
async fn streamed_pages(tx: &mut Tx, send: &Pages) -> Result<()> {
    let sql = AssertSqlSafe(format!("{SELECT_EVENTS} ORDER BY seq"));
    let mut rows = sqlx::query(sql).fetch(&mut **tx);
    let mut page = Vec::new();
    let mut prev_seq: i64 = 0;
    while let Some(row) = rows.next().await {
        let row = row.map_err(Error::from)?;
        let seq = row
            .try_get::<i64, _>(0)
            .unwrap_or(prev_seq.saturating_add(1));
        prev_seq = seq;
        page.push(read_row(Ok(row), seq)?);
        if page.len() as i64 == PAGE && send.send(Ok(std::mem::take(&mut page))).await.is_err() {
            return Ok(());
        }
    }
    if !page.is_empty() {
        let _ = send.send(Ok(page)).await;
    }
    Ok(())
}
