//! Storage: one sqlx `AnyPool` over SQLite (the embedded default) or PostgreSQL, chosen at run
//! time from the database URL, with the migrations of both dialects embedded in the binary.
//!
//! Everything that changes state goes through [`Store::begin`], so the change and its audit event
//! share one transaction. SQL is written once for both backends: text ids, integer epoch-ms times,
//! `$1` placeholders.

mod location;
mod write;

pub use location::{DatabaseLocation, sqlite_url};
pub use write::{Arg, Write};

use crate::error::{Error, Result};
use crate::events::{self, AccessEvent};
use sqlx::AnyConnection;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Connection, Executor};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard, broadcast};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in a file (WAL mode): one instance, no external service.
    Sqlite,
    /// PostgreSQL: several instances can share it.
    Postgres,
}

impl Backend {
    /// Lower-case name, as shown to users.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    }
}

/// The newest schema version embedded for `backend`.
pub fn latest_schema_version(backend: Backend) -> i64 {
    migrator(backend)
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// The backend behind a connection of a [`Store`].
pub fn backend_of(conn: &AnyConnection) -> Backend {
    match conn.backend_name() {
        "PostgreSQL" => Backend::Postgres,
        _ => Backend::Sqlite,
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long to wait for a connection (and for the first connect) before giving up.
    pub connect_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    location: Arc<DatabaseLocation>,
    /// SQLite allows one writer at a time; queueing writers here (fairly) instead of in SQLite's
    /// busy handler keeps latency flat under contention. Unused on PostgreSQL.
    write_gate: Arc<Mutex<()>>,
    /// The in-process access event stream (see [`crate::events`]).
    events: broadcast::Sender<AccessEvent>,
    /// The connection URL, kept for PostgreSQL's LISTEN connection. Never shown.
    url: Arc<crate::secrets::Secret>,
    /// Whether the LISTEN task runs (PostgreSQL).
    listening: Arc<std::sync::OnceLock<()>>,
    /// Moves on every change this process learns of that caches of access or sign-in state
    /// depend on: each access event (committed here, NOTIFY from another instance, SQLite's
    /// watcher) and each browser session ended here. Read with [`Store::generation`].
    generation: Arc<AtomicU64>,
}

/// A write transaction. Derefs to the connection, so repository functions take
/// `&mut AnyConnection` and work the same inside or outside a transaction.
pub struct Tx {
    tx: sqlx::Transaction<'static, Any>,
    _gate: Option<OwnedMutexGuard<()>>,
    backend: Backend,
    bus: broadcast::Sender<AccessEvent>,
    generation: Arc<AtomicU64>,
    /// Whether a browser session ended (moves [`Store::generation`] at commit).
    sessions_changed: bool,
    /// Events sent once the transaction commits.
    pending: Vec<AccessEvent>,
    /// Whether something that decisions depend on changed.
    access_changed: bool,
    /// SQLite: the audit chain head after this transaction's appends (sequence number, hash),
    /// written to `audit_head` at commit.
    pub(crate) audit_head: Option<(i64, [u8; 32])>,
    /// SQLite: audit rows appended but not yet written (fewer than one batch), written at
    /// commit with the head. Lost with the transaction on rollback, as they should be.
    pub(crate) audit_rows: Vec<crate::ledger::audit::Event>,
    /// SQLite: writes sent with the commit ([`Tx::write_later`]).
    later: Vec<Write>,
    /// The transaction holds the audit record of a refusal and nothing else: [`Tx::settle`]
    /// commits it although the operation failed.
    refusal: bool,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

impl Tx {
    /// Makes the transaction durable. If it changed access, it also bumps `access_version` (so
    /// caches in this and other processes notice) and sends its events: on PostgreSQL with
    /// NOTIFY, delivered at commit to every instance (this one included); on SQLite to this
    /// process's subscribers once committed.
    pub async fn commit(mut self) -> Result<()> {
        let bump = self.access_changed || !self.pending.is_empty();
        if bump {
            self.pending.push(AccessEvent::AccessChanged);
        }
        match self.backend {
            Backend::Sqlite => {
                let rows = std::mem::take(&mut self.audit_rows);
                let later = std::mem::take(&mut self.later);
                let head = self.audit_head.take();
                write::flush_sqlite(&mut self.tx, &later, &rows, head, bump).await?;
            }
            Backend::Postgres if bump => {
                sqlx::query("UPDATE access_version SET version = version + 1 WHERE id = 1")
                    .execute(&mut *self.tx)
                    .await?;
                for event in &self.pending {
                    let payload = serde_json::to_string(event)
                        .map_err(|e| Error::Storage(format!("event encoding: {e}")))?;
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(events::CHANNEL)
                        .bind(payload)
                        .execute(&mut *self.tx)
                        .await?;
                }
            }
            Backend::Postgres => {}
        }
        self.tx.commit().await?;
        // Before anything the caller answers: a cache in this process sees the change at once
        // (PostgreSQL's NOTIFY comes back a moment later and moves it again).
        if bump || self.sessions_changed {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        if self.backend == Backend::Sqlite {
            for event in self.pending.drain(..) {
                // No subscriber is not an error.
                let _ = self.bus.send(event);
            }
        }
        Ok(())
    }

    /// Queues an event to send when the transaction commits (never if it rolls back).
    pub fn publish(&mut self, event: AccessEvent) {
        self.pending.push(event);
    }

    /// Records that this transaction changes what decisions see.
    pub(crate) fn mark_access_changed(&mut self) {
        self.access_changed = true;
    }

    /// Records that this transaction ends browser sessions (or changes their second factor), so
    /// that caches of who is signed in drop what they hold at commit.
    pub(crate) fn mark_sessions_changed(&mut self) {
        self.sessions_changed = true;
    }

    /// Abandons the transaction (also what happens on drop).
    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }

    /// Marks the transaction as holding only the audit record of a refusal (written before
    /// anything else changed), so that [`Tx::settle`] keeps it.
    pub(crate) fn mark_refusal(&mut self) {
        self.refusal = true;
    }

    /// Ends the transaction by the outcome of the operation that ran in it: commits on success,
    /// and on failure commits only a refusal's audit record (every refusal is audited), else
    /// rolls back.
    pub async fn settle<T, E>(self, outcome: &std::result::Result<T, E>) -> Result<()> {
        if outcome.is_ok() || self.refusal {
            self.commit().await
        } else {
            self.rollback().await
        }
    }
}

impl Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

impl Store {
    /// Connects to `url` (`sqlite://PATH?mode=rwc` or `postgres://…`). Does not migrate.
    ///
    /// Errors name the database by host (PostgreSQL) or path (SQLite), never with credentials.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let location = DatabaseLocation::parse(url)?;
        let unreachable = |e: sqlx::Error| match Error::from(e) {
            Error::Unavailable(msg) | Error::Storage(msg) => Error::Unavailable(format!(
                "cannot connect to {}: {}",
                location.describe(),
                msg
            )),
            other => other,
        };

        // One direct connection first: its error says what is wrong (refused, unknown host, bad
        // password), where a pool would only report that it timed out.
        let mut first = tokio::time::timeout(options.connect_timeout, AnyConnection::connect(url))
            .await
            .map_err(|_| {
                Error::Unavailable(format!(
                    "cannot connect to {}: no answer within {:?}",
                    location.describe(),
                    options.connect_timeout
                ))
            })?
            .map_err(unreachable)?;
        if location.backend() == Backend::Sqlite {
            // WAL is a property of the file: set it once, before the pool opens connections
            // concurrently (switching needs an exclusive lock that the busy timeout cannot wait on).
            first
                .execute("PRAGMA journal_mode = WAL")
                .await
                .map_err(unreachable)?;
        }
        first.close().await.map_err(unreachable)?;

        let backend = location.backend();
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.connect_timeout)
            // A SQLite connection is a file handle that does not go stale: pinging it on every
            // acquire would cost a round trip to its worker thread per request.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // No mmap: a connection whose database another connection changed
                        // drops its whole mapping at its next transaction (a munmap per
                        // request when the pool rotates), which cost more than it saved.
                        conn.execute(
                            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                             PRAGMA busy_timeout = 10000; PRAGMA cache_size = -32768;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(unreachable)?;
        Ok(Self {
            pool,
            location: Arc::new(location),
            write_gate: Arc::new(Mutex::new(())),
            events: broadcast::channel(events::CAPACITY).0,
            url: Arc::new(crate::secrets::Secret::new(url.to_owned())),
            listening: Arc::new(std::sync::OnceLock::new()),
            generation: Arc::default(),
        })
    }

    /// Applies every embedded migration not yet applied; returns how many ran.
    pub async fn migrate(&self) -> Result<usize> {
        let pending = self.pending_migrations().await?;
        self.migrator().run(&self.pool).await?;
        Ok(pending)
    }

    /// How many embedded migrations the database has not applied yet.
    pub async fn pending_migrations(&self) -> Result<usize> {
        use sqlx::migrate::Migrate;
        let mut conn = self.pool.acquire().await?;
        conn.ensure_migrations_table("_sqlx_migrations").await?;
        let applied: std::collections::HashSet<i64> = conn
            .list_applied_migrations("_sqlx_migrations")
            .await?
            .into_iter()
            .map(|m| m.version)
            .collect();
        Ok(self
            .migrator()
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .count())
    }

    /// The newest schema version this binary knows.
    pub fn schema_version(&self) -> i64 {
        latest_schema_version(self.backend())
    }

    fn migrator(&self) -> &'static Migrator {
        migrator(self.backend())
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        conn.ping().await?;
        Ok(())
    }

    /// Starts a write transaction. On SQLite it takes the process-wide write gate and
    /// `BEGIN IMMEDIATE`, so the transaction holds the write lock from its first statement and
    /// never fails half-way with a busy snapshot. Never call it while holding a `Tx`: on SQLite
    /// it would wait for itself.
    pub async fn begin(&self) -> Result<Tx> {
        match self.backend() {
            Backend::Sqlite => {
                let gate = self.write_gate.clone().lock_owned().await;
                let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                Ok(self.tx(tx, Some(gate)))
            }
            Backend::Postgres => Ok(self.tx(self.pool.begin().await?, None)),
        }
    }

    fn tx(&self, tx: sqlx::Transaction<'static, Any>, gate: Option<OwnedMutexGuard<()>>) -> Tx {
        Tx {
            tx,
            _gate: gate,
            backend: self.backend(),
            bus: self.events.clone(),
            generation: self.generation.clone(),
            sessions_changed: false,
            pending: Vec::new(),
            access_changed: false,
            audit_head: None,
            audit_rows: Vec::new(),
            later: Vec::new(),
            refusal: false,
        }
    }

    /// Subscribes to the access event stream. On PostgreSQL the first call starts this process's
    /// LISTEN connection, which forwards every instance's events (after a lost connection it
    /// sends `AccessChanged`, since events may have been missed while it reconnected).
    pub fn subscribe(&self) -> broadcast::Receiver<AccessEvent> {
        let rx = self.events.subscribe();
        if self.backend() == Backend::Postgres {
            self.listening.get_or_init(|| {
                tokio::spawn(listen(
                    self.url.clone(),
                    self.events.clone(),
                    self.generation.clone(),
                ));
            });
        }
        rx
    }

    /// Sends an event to this process's subscribers only (the SQLite change watcher uses it).
    pub fn publish_local(&self, event: AccessEvent) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let _ = self.events.send(event);
    }

    /// A number that moves whenever this process learns of a change to access or to browser
    /// sessions (see the field). Equal readings mean nothing changed in between as far as this
    /// process knows; changes made by another instance arrive with their event.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The access version: bumped by every committed change that decisions depend on.
    pub async fn access_version(conn: &mut AnyConnection) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT version FROM access_version WHERE id = 1")
                .fetch_one(&mut *conn)
                .await?,
        )
    }

    /// The pool, for reads outside a transaction.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        self.location.backend()
    }

    /// Where the data lives, without credentials (for messages and `/healthz`).
    pub fn describe(&self) -> String {
        self.location.describe()
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Forwards NOTIFY payloads on [`events::CHANNEL`] to the in-process broadcast, for ever.
async fn listen(
    url: Arc<crate::secrets::Secret>,
    bus: broadcast::Sender<AccessEvent>,
    generation: Arc<AtomicU64>,
) {
    let send = |event: AccessEvent| {
        generation.fetch_add(1, Ordering::SeqCst);
        let _ = bus.send(event);
    };
    loop {
        match sqlx::postgres::PgListener::connect(url.expose()).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(events::CHANNEL).await {
                    tracing::warn!(error = %e, "cannot LISTEN for access events; retrying");
                } else {
                    // Anything may have happened while we were not listening.
                    send(AccessEvent::AccessChanged);
                    loop {
                        match listener.recv().await {
                            Ok(n) => match serde_json::from_str::<AccessEvent>(n.payload()) {
                                Ok(event) => send(event),
                                Err(e) => tracing::warn!(error = %e, "unreadable access event"),
                            },
                            Err(e) => {
                                tracing::warn!(error = %e, "access event connection lost");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect to LISTEN for access events"),
        }
        send(AccessEvent::AccessChanged);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
