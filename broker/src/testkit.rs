//! Test support shared by every crate's tests: a fresh, migrated database per test on either
//! backend. PostgreSQL tests each get their own database on the server named by
//! `GATEHOUSE_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), so tests
//! run in parallel; it is dropped when the test ends, even when it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::ledger::store::{Backend, Store, StoreOptions, sqlite_url};
use sqlx::{AnyConnection, Connection, Executor};

/// The PostgreSQL server tests use.
pub fn postgres_admin_url() -> String {
    std::env::var("GATEHOUSE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that lives as long as the test.
pub struct TestDb {
    pub store: Store,
    /// The URL the store was opened with (hand it to a child `gatehouse` process).
    pub url: String,
    backend: Backend,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh, migrated database on `backend`.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite().await,
            Backend::Postgres => Self::postgres().await,
        }
    }

    /// A migrated SQLite file in a temporary directory.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_url(&dir.path().join("gatehouse.db"));
        let store = Store::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        Self {
            store,
            url,
            backend: Backend::Sqlite,
            pg_name: None,
            _dir: Some(dir),
        }
    }

    /// A migrated PostgreSQL database of its own.
    pub async fn postgres() -> Self {
        let (name, url) = create_postgres_database().await;
        let store = Store::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        Self {
            store,
            url,
            backend: Backend::Postgres,
            pg_name: Some(name),
            _dir: None,
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs raw SQL as an attacker with database access would, bypassing append-only triggers.
    pub async fn tamper(&self, sql: &str) {
        let mut conn = self.store.pool().acquire().await.unwrap();
        tamper(&mut conn, self.backend, sql).await;
    }
}

/// Runs `sql` on `conn` with the append-only triggers of the audit tables out of the way, as
/// someone with write access to the database (or the SQLite file) can.
pub async fn tamper(conn: &mut AnyConnection, backend: Backend, sql: &str) {
    let script = match backend {
        Backend::Sqlite => format!(
            "DROP TRIGGER IF EXISTS audit_events_no_update; \
             DROP TRIGGER IF EXISTS audit_events_no_delete; \
             DROP TRIGGER IF EXISTS audit_checkpoints_no_update; \
             DROP TRIGGER IF EXISTS audit_checkpoints_no_delete; {sql}"
        ),
        Backend::Postgres => format!(
            "ALTER TABLE audit_events DISABLE TRIGGER USER; \
             ALTER TABLE audit_checkpoints DISABLE TRIGGER USER; {sql}; \
             ALTER TABLE audit_events ENABLE TRIGGER USER; \
             ALTER TABLE audit_checkpoints ENABLE TRIGGER USER;"
        ),
    };
    conn.execute(sqlx::AssertSqlSafe(script)).await.unwrap();
}

/// Creates an empty PostgreSQL database; returns its name and URL.
pub async fn create_postgres_database() -> (String, String) {
    sqlx::any::install_default_drivers();
    let admin = postgres_admin_url();
    let name = format!("gh_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = AnyConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!("PostgreSQL for tests is not reachable at {admin}: {e} (start it, or set GATEHOUSE_TEST_POSTGRES_URL)")
    });
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    conn.close().await.unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    (name, url.to_string())
}

/// Drops a database made by [`create_postgres_database`], closing its connections.
pub async fn drop_postgres_database(name: &str) {
    if let Ok(mut conn) = AnyConnection::connect(&postgres_admin_url()).await {
        let _ = conn
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
        let _ = conn.close().await;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop may run inside a runtime (or while unwinding): do the async work on a thread
            // with a runtime of its own.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_postgres_database(&name));
                }
            })
            .join();
        }
    }
}
