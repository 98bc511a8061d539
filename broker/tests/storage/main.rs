//! The storage suite: every scenario runs against SQLite and against the real PostgreSQL server,
//! each on a fresh database of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_broker::access::targets::{self, Kind, NewTarget};
use gatehouse_broker::identity::identities::{self, NewIdentity, Status};
use gatehouse_broker::keys::SigningKeyPair;
use gatehouse_broker::ledger::audit::{self, NewEvent, Outcome, checkpoint};
use gatehouse_broker::secrets::Secret;
use gatehouse_broker::testkit::TestDb;
use gatehouse_broker::{
    Actor, Backend, Error, Store, StoreOptions,
    access::{privileges, roles},
    bootstrap,
    identity::{groups, ssh_keys, tokens},
};
use sqlx::Row;

const T0: i64 = 1_764_000_000_000;
const ALICE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINIA111t8AegBYeJ2SJ8AJ8MPbP8SzqkdjxX3NOENKGg alice@laptop";

/// Generates one `#[tokio::test]` per backend for each scenario in `suite`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = gatehouse_broker::testkit::TestDb::new(gatehouse_broker::Backend::Sqlite).await;
                    super::suite::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = gatehouse_broker::testkit::TestDb::new(gatehouse_broker::Backend::Postgres).await;
                    super::suite::$name(&db).await;
                }
            )*
        }
    };
}

on_both_backends!(
    migrations_are_idempotent,
    identities_round_trip_and_are_audited,
    duplicate_and_invalid_names_are_refused,
    groups_hold_members,
    ssh_keys_belong_to_one_identity,
    targets_and_roles_round_trip,
    security_api_tokens_are_stored_hashed_and_checked,
    security_bootstrap_token_creates_admin_once,
    security_setup_code_is_one_time_and_expires,
    rolled_back_change_leaves_no_audit,
    audit_rows_are_append_only,
    edited_audit_row_is_named_by_verify,
    deleted_tail_fails_against_checkpoint,
    concurrent_appends_keep_one_chain,
    batch_append_matches_single_appends,
    buffered_appends_commit_and_roll_back_with_the_change,
    verify_reads_a_consistent_snapshot_while_appending,
    verify_names_problems_across_page_boundaries,
    appended_hashes_match_the_documented_encoding,
    grant_events_reach_subscribers_only_after_commit,
    sessions_start_end_once_and_are_audited,
    security_web_sessions_end_on_timeouts_disable_and_factor_change,
    security_passwords_are_argon2id_hashes_and_empty_never_matches,
    security_recovery_codes_are_single_use_and_per_identity,
    hr_joiners_in_bulk_movers_and_leavers,
    hr_start_and_end_dates_apply_between_imports,
    security_the_hr_feed_never_lifts_an_administrators_suspension,
    security_app_codes_are_single_use_and_bound_to_app_and_state,
    app_sessions_end_with_the_identity_and_on_sign_out_at_the_app,
    spent_codes_and_old_app_sessions_are_purged,
    unused_keys_and_tokens_are_findings_until_they_are_used,
    quarterly_campaign_is_decided_applied_verified_and_reported,
    sign_off_campaigns_wait_for_their_owner_and_refuse_others,
    a_movers_manual_access_goes_to_the_new_manager_and_is_revoked_at_grace_end,
    bulk_accept_reminders_and_escalation_to_the_fallback,
    security_a_review_never_removes_the_last_administrator,
    evidence_packs_of_a_fixture_year_hold_its_exact_figures,
);

async fn count(store: &Store, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

async fn actions(store: &Store) -> Vec<String> {
    sqlx::query("SELECT action FROM audit_events ORDER BY seq")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect()
}

async fn add_identity(store: &Store, name: &str) -> identities::Identity {
    let mut tx = store.begin().await.unwrap();
    let i = identities::create(&mut tx, &Actor::Cli, T0, NewIdentity::named(name))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    i
}

fn signer() -> (tempfile::TempDir, SigningKeyPair) {
    let dir = tempfile::tempdir().unwrap();
    let (k, _) = SigningKeyPair::load_or_create(&dir.path().join("k.pem")).unwrap();
    (dir, k)
}

mod apps;
mod audit_log;
mod compliance;
mod events;
mod findings;
mod lifecycle;
mod model;
mod reviews;
mod sessions;
mod web;

/// The scenarios `on_both_backends!` runs.
mod suite {
    pub use super::apps::*;
    pub use super::audit_log::*;
    pub use super::compliance::*;
    pub use super::events::*;
    pub use super::findings::*;
    pub use super::lifecycle::*;
    pub use super::model::*;
    pub use super::reviews::*;
    pub use super::sessions::*;
    pub use super::web::*;
}

/// Both migration sets must describe the same tables and columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_schemas_match() {
    let lite = TestDb::sqlite().await;
    let pg = TestDb::postgres().await;
    let cols = |rows: Vec<sqlx::any::AnyRow>| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        v.retain(|(t, _)| !t.starts_with("_sqlx") && !t.starts_with("sqlite_"));
        v.sort();
        v
    };
    let a = cols(
        sqlx::query(
            "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table'",
        )
        .fetch_all(lite.store.pool())
        .await
        .unwrap(),
    );
    let b = cols(
        sqlx::query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public'",
        )
        .fetch_all(pg.store.pool())
        .await
        .unwrap(),
    );
    assert!(a.len() > 40, "{a:?}");
    assert_eq!(a, b);
}

/// An unreachable PostgreSQL is an `Unavailable` error naming host and port, not a hang or panic.
#[tokio::test]
async fn unreachable_postgres_names_the_host() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("postgres://gh:secret-pw@127.0.0.1:{port}/gatehouse");
    let err = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(!msg.contains("secret-pw"), "{msg}");
}
