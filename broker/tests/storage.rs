//! The storage suite: every test runs against SQLite and against the real PostgreSQL server,
//! each on a fresh database of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_broker::audit::{self, NewEvent, Outcome, checkpoint};
use gatehouse_broker::identities::{self, NewIdentity, Status};
use gatehouse_broker::keys::SigningKeyPair;
use gatehouse_broker::secrets::Secret;
use gatehouse_broker::targets::{self, Kind, NewTarget};
use gatehouse_broker::testkit::TestDb;
use gatehouse_broker::{
    Actor, Backend, Error, Store, StoreOptions, bootstrap, groups, privileges, roles, ssh_keys,
    tokens,
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
    verify_reads_a_consistent_snapshot_while_appending,
    verify_names_problems_across_page_boundaries,
    appended_hashes_match_the_documented_encoding,
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

mod suite {
    use super::*;

    pub async fn migrations_are_idempotent(db: &TestDb) {
        assert_eq!(
            db.store.migrate().await.unwrap(),
            0,
            "second run applies nothing"
        );
        assert!(db.store.schema_version() >= 1);
        let (seq, hash) = audit::head(&mut db.store.pool().acquire().await.unwrap())
            .await
            .unwrap();
        assert_eq!((seq, hash.as_str()), (0, "0".repeat(64).as_str()));
        db.store.ping().await.unwrap();
    }

    pub async fn identities_round_trip_and_are_audited(db: &TestDb) {
        let store = &db.store;
        let mut tx = store.begin().await.unwrap();
        let mut new = NewIdentity::named("alice");
        new.display_name = "Alice Liddell".into();
        new.email = Some("alice@example.com".into());
        new.attributes
            .insert("department".into(), "engineering".into());
        let alice = identities::create(&mut tx, &Actor::Cli, T0, new)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut conn = store.pool().acquire().await.unwrap();
        let got = identities::by_username(&mut conn, "alice")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, alice);
        assert_eq!(got.attributes["department"], "engineering");
        assert_eq!(
            identities::by_id(&mut conn, &alice.id)
                .await
                .unwrap()
                .unwrap()
                .username,
            "alice"
        );
        assert!(
            identities::by_username(&mut conn, "nobody")
                .await
                .unwrap()
                .is_none()
        );
        drop(conn);

        let mut tx = store.begin().await.unwrap();
        let disabled =
            identities::set_status(&mut tx, &Actor::Cli, T0 + 1, "alice", Status::Disabled)
                .await
                .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(disabled.status, Status::Disabled);
        let all = identities::list(&mut store.pool().acquire().await.unwrap())
            .await
            .unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].status, Status::Disabled);
        assert_eq!(actions(store).await, ["identity.create", "identity.status"]);
    }

    pub async fn duplicate_and_invalid_names_are_refused(db: &TestDb) {
        add_identity(&db.store, "bob").await;
        let mut tx = db.store.begin().await.unwrap();
        let err = identities::create(&mut tx, &Actor::Cli, T0, NewIdentity::named("bob"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err:?}");
        assert_eq!(err.code(), "conflict");
        drop(tx);
        let mut tx = db.store.begin().await.unwrap();
        let err = identities::create(&mut tx, &Actor::Cli, T0, NewIdentity::named("Bob@x"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
        drop(tx);
        assert_eq!(count(&db.store, "identities").await, 1);
        assert_eq!(count(&db.store, "audit_events").await, 1);
    }

    pub async fn groups_hold_members(db: &TestDb) {
        add_identity(&db.store, "bob").await;
        add_identity(&db.store, "carol").await;
        let mut tx = db.store.begin().await.unwrap();
        groups::create(
            &mut tx,
            &Actor::Cli,
            T0,
            "db-owners",
            "Owners of the databases",
        )
        .await
        .unwrap();
        assert!(
            groups::add_member(&mut tx, &Actor::Cli, T0, "db-owners", "bob")
                .await
                .unwrap()
        );
        assert!(
            groups::add_member(&mut tx, &Actor::Cli, T0, "db-owners", "carol")
                .await
                .unwrap()
        );
        assert!(
            !groups::add_member(&mut tx, &Actor::Cli, T0, "db-owners", "carol")
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
        let mut conn = db.store.pool().acquire().await.unwrap();
        assert_eq!(
            groups::members(&mut conn, "db-owners").await.unwrap(),
            ["bob", "carol"]
        );
        assert_eq!(
            groups::of_identity(&mut conn, "bob").await.unwrap(),
            ["db-owners"]
        );
        drop(conn);
        let mut tx = db.store.begin().await.unwrap();
        assert!(
            groups::remove_member(&mut tx, &Actor::Cli, T0, "db-owners", "bob")
                .await
                .unwrap()
        );
        let err = groups::add_member(&mut tx, &Actor::Cli, T0, "db-owners", "nobody")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound(_)));
        tx.commit().await.unwrap();
        let mut conn = db.store.pool().acquire().await.unwrap();
        assert_eq!(
            groups::members(&mut conn, "db-owners").await.unwrap(),
            ["carol"]
        );
        let acts = actions(&db.store).await;
        assert_eq!(
            acts.iter().filter(|a| *a == "group.member.add").count(),
            2,
            "no-op add is not audited"
        );
        assert_eq!(acts.last().unwrap(), "group.member.remove");
    }

    pub async fn ssh_keys_belong_to_one_identity(db: &TestDb) {
        let alice = add_identity(&db.store, "alice").await;
        add_identity(&db.store, "mallory").await;
        let mut tx = db.store.begin().await.unwrap();
        let key = ssh_keys::add(&mut tx, &Actor::Cli, T0, "alice", ALICE_KEY)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            key.fingerprint,
            "SHA256:2B53fzy3qHcQYvVpbKOmzZuWAd+72ogJu4gdACUn5Oc"
        );
        let mut tx = db.store.begin().await.unwrap();
        let err = ssh_keys::add(&mut tx, &Actor::Cli, T0, "mallory", ALICE_KEY)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err:?}");
        drop(tx);
        let mut conn = db.store.pool().acquire().await.unwrap();
        assert_eq!(
            ssh_keys::owner_of(&mut conn, &key.fingerprint)
                .await
                .unwrap(),
            Some(alice.id.clone())
        );
        assert_eq!(
            ssh_keys::of_identity(&mut conn, &alice.id).await.unwrap(),
            vec![key]
        );
    }

    pub async fn targets_and_roles_round_trip(db: &TestDb) {
        let mut labels = serde_json::Map::new();
        labels.insert("env".into(), "prod".into());
        let mut tx = db.store.begin().await.unwrap();
        let t = targets::create(
            &mut tx,
            &Actor::Cli,
            T0,
            NewTarget {
                name: "db-01".into(),
                kind: Kind::Ssh,
                address: "10.0.0.5:22".into(),
                labels,
                host_key: Some(ALICE_KEY.into()),
                description: String::new(),
            },
        )
        .await
        .unwrap();
        roles::create(&mut tx, &Actor::Cli, T0, "prod-db", "Production databases")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut conn = db.store.pool().acquire().await.unwrap();
        assert_eq!(
            targets::by_name(&mut conn, "db-01").await.unwrap().unwrap(),
            t
        );
        assert_eq!(targets::list(&mut conn).await.unwrap().len(), 1);
        assert_eq!(roles::list(&mut conn).await.unwrap()[0].name, "prod-db");
        drop(conn);
        let mut tx = db.store.begin().await.unwrap();
        let bad = NewTarget {
            name: "x".into(),
            kind: Kind::Http,
            address: " ".into(),
            labels: Default::default(),
            host_key: None,
            description: String::new(),
        };
        assert!(matches!(
            targets::create(&mut tx, &Actor::Cli, T0, bad).await,
            Err(Error::Invalid(_))
        ));
        assert_eq!(actions(&db.store).await, ["target.create", "role.create"]);
    }

    pub async fn security_api_tokens_are_stored_hashed_and_checked(db: &TestDb) {
        add_identity(&db.store, "alice").await;
        let mut tx = db.store.begin().await.unwrap();
        let (tok, secret) =
            tokens::create(&mut tx, &Actor::Cli, T0, "alice", "ci", Some(T0 + 60_000))
                .await
                .unwrap();
        tx.commit().await.unwrap();
        assert!(secret.expose().starts_with(tokens::PREFIX));

        // Nothing in the database holds the token itself.
        let stored: String = sqlx::query("SELECT token_hash FROM api_tokens")
            .fetch_one(db.store.pool())
            .await
            .unwrap()
            .get(0);
        assert_ne!(stored, secret.expose());
        assert!(!stored.contains(&secret.expose()[4..12]));
        let details: Vec<String> = sqlx::query("SELECT details FROM audit_events")
            .fetch_all(db.store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            details.iter().all(|d| !d.contains(secret.expose())),
            "token leaked into audit"
        );

        let mut conn = db.store.pool().acquire().await.unwrap();
        let who = tokens::authenticate(&mut conn, secret.expose(), T0 + 1)
            .await
            .unwrap();
        assert_eq!(who.username, "alice");
        for bad in ["", "ght_nope", &"x".repeat(10_000)] {
            assert!(matches!(
                tokens::authenticate(&mut conn, bad, T0).await,
                Err(Error::Unauthenticated)
            ));
        }
        // Expired.
        assert!(matches!(
            tokens::authenticate(&mut conn, secret.expose(), T0 + 60_000).await,
            Err(Error::Unauthenticated)
        ));
        drop(conn);
        // Disabled identity.
        let mut tx = db.store.begin().await.unwrap();
        identities::set_status(&mut tx, &Actor::Cli, T0, "alice", Status::Disabled)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut conn = db.store.pool().acquire().await.unwrap();
        assert!(matches!(
            tokens::authenticate(&mut conn, secret.expose(), T0).await,
            Err(Error::Unauthenticated)
        ));
        drop(conn);
        // Revoked.
        let mut tx = db.store.begin().await.unwrap();
        identities::set_status(&mut tx, &Actor::Cli, T0, "alice", Status::Active)
            .await
            .unwrap();
        tokens::revoke(&mut tx, &Actor::Cli, T0, &tok.id)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut conn = db.store.pool().acquire().await.unwrap();
        assert!(matches!(
            tokens::authenticate(&mut conn, secret.expose(), T0).await,
            Err(Error::Unauthenticated)
        ));
        assert_eq!(
            tokens::of_identity(&mut conn, &who.id).await.unwrap()[0].revoked_at_ms,
            Some(T0)
        );
    }

    pub async fn security_bootstrap_token_creates_admin_once(db: &TestDb) {
        let short = Secret::new("too-short");
        let err = bootstrap::on_start(&db.store, T0, Some(&short))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("at least 24 characters"), "{err}");
        assert_eq!(count(&db.store, "identities").await, 0);

        let token = Secret::new("bootstrap-token-0123456789abcdef");
        let out = bootstrap::on_start(&db.store, T0, Some(&token))
            .await
            .unwrap();
        assert!(matches!(out, bootstrap::Outcome::AdminCreated), "{out:?}");
        let mut conn = db.store.pool().acquire().await.unwrap();
        let admin = tokens::authenticate(&mut conn, token.expose(), T0)
            .await
            .unwrap();
        assert_eq!(admin.username, "admin");
        assert!(
            privileges::has(&mut conn, &admin.id, privileges::Privilege::Admin)
                .await
                .unwrap()
        );
        drop(conn);
        assert_eq!(
            actions(&db.store).await,
            ["identity.create", "privilege.grant", "api_token.create"]
        );

        let again = bootstrap::on_start(&db.store, T0, Some(&token))
            .await
            .unwrap();
        assert!(matches!(again, bootstrap::Outcome::AdminExists));
        let other = bootstrap::on_start(&db.store, T0, None).await.unwrap();
        assert!(matches!(other, bootstrap::Outcome::AdminExists));
        assert_eq!(count(&db.store, "api_tokens").await, 1);

        // The only admin is disabled: bootstrapping again re-activates it (audited), with a new
        // token; the old value is refused with a reason.
        let mut tx = db.store.begin().await.unwrap();
        identities::set_status(&mut tx, &Actor::Cli, T0, "admin", Status::Disabled)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let err = bootstrap::on_start(&db.store, T0, Some(&token))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("used before"), "{err}");
        let fresh = Secret::new("bootstrap-token-fedcba9876543210");
        let out = bootstrap::on_start(&db.store, T0, Some(&fresh))
            .await
            .unwrap();
        assert!(matches!(out, bootstrap::Outcome::AdminCreated), "{out:?}");
        let mut conn = db.store.pool().acquire().await.unwrap();
        assert_eq!(
            tokens::authenticate(&mut conn, fresh.expose(), T0)
                .await
                .unwrap()
                .username,
            "admin"
        );
    }

    pub async fn security_setup_code_is_one_time_and_expires(db: &TestDb) {
        let first = match bootstrap::on_start(&db.store, T0, None).await.unwrap() {
            bootstrap::Outcome::SetupCode { code, .. } => code,
            other => panic!("{other:?}"),
        };
        // A restart prints a new link; the old one stops working.
        let second = match bootstrap::on_start(&db.store, T0 + 1, None).await.unwrap() {
            bootstrap::Outcome::SetupCode { code, .. } => code,
            other => panic!("{other:?}"),
        };
        assert_ne!(first, second);
        let err = bootstrap::redeem_setup_code(&db.store, T0 + 2, first.expose())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unauthenticated));
        // Expired.
        let late = T0 + bootstrap::SETUP_CODE_TTL_MS + 2;
        let err = bootstrap::redeem_setup_code(&db.store, late, second.expose())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unauthenticated));
        let (admin, token) = bootstrap::redeem_setup_code(&db.store, T0 + 3, second.expose())
            .await
            .unwrap();
        assert_eq!(admin.username, "admin");
        let mut conn = db.store.pool().acquire().await.unwrap();
        assert_eq!(
            tokens::authenticate(&mut conn, token.expose(), T0 + 4)
                .await
                .unwrap()
                .id,
            admin.id
        );
        drop(conn);
        // Used.
        let err = bootstrap::redeem_setup_code(&db.store, T0 + 5, second.expose())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unauthenticated));
        assert!(
            actions(&db.store)
                .await
                .contains(&"setup_code.issue".to_string())
        );
    }

    pub async fn rolled_back_change_leaves_no_audit(db: &TestDb) {
        let mut tx = db.store.begin().await.unwrap();
        identities::create(&mut tx, &Actor::Cli, T0, NewIdentity::named("ghost"))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(count(&db.store, "identities").await, 0);
        assert_eq!(count(&db.store, "audit_events").await, 0);
        let mut conn = db.store.pool().acquire().await.unwrap();
        assert_eq!(
            audit::head(&mut conn).await.unwrap().0,
            0,
            "head rolled back too"
        );
        drop(conn);
        add_identity(&db.store, "real").await;
        let report = audit::verify::verify(&db.store, None, None).await.unwrap();
        assert_eq!((report.events, report.problem), (1, None));
    }

    pub async fn audit_rows_are_append_only(db: &TestDb) {
        add_identity(&db.store, "alice").await;
        for sql in [
            "UPDATE audit_events SET actor = 'mallory'",
            "DELETE FROM audit_events",
        ] {
            let err = sqlx::query(sql).execute(db.store.pool()).await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
        if db.backend() == Backend::Postgres {
            let err = sqlx::query("TRUNCATE audit_events")
                .execute(db.store.pool())
                .await
                .unwrap_err();
            assert!(err.to_string().contains("append-only"), "{err}");
        }
        assert_eq!(count(&db.store, "audit_events").await, 1);
    }

    pub async fn edited_audit_row_is_named_by_verify(db: &TestDb) {
        for name in ["a1", "a2", "a3", "a4", "a5"] {
            add_identity(&db.store, name).await;
        }
        let clean = audit::verify::verify(&db.store, None, None).await.unwrap();
        assert_eq!((clean.events, clean.problem.clone()), (5, None));
        db.tamper("UPDATE audit_events SET details = '{\"id\":\"forged\"}' WHERE seq = 3")
            .await;
        let report = audit::verify::verify(&db.store, None, None).await.unwrap();
        let problem = report.problem.expect("tampering must be found");
        assert_eq!(problem.seq, 3, "{problem}");
    }

    pub async fn deleted_tail_fails_against_checkpoint(db: &TestDb) {
        let (_d, key) = signer();
        for name in ["b1", "b2", "b3", "b4"] {
            add_identity(&db.store, name).await;
        }
        let cp = checkpoint::create(&db.store, T0, &key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cp.size, 4);
        // No growth: the same checkpoint comes back.
        assert_eq!(
            checkpoint::create(&db.store, T0 + 1, &key)
                .await
                .unwrap()
                .unwrap(),
            cp
        );
        add_identity(&db.store, "b5").await;
        let ok = audit::verify::verify(&db.store, Some(&key.public()), None)
            .await
            .unwrap();
        assert_eq!((ok.events, ok.checkpoints, ok.problem), (5, 1, None));
        // Without the public key, stored checkpoints cannot be trusted: refuse, don't pass.
        assert!(matches!(
            audit::verify::verify(&db.store, None, None).await,
            Err(Error::Key(_))
        ));

        // An attacker deletes the tail, fixes the head and removes the stored checkpoints.
        db.tamper("DELETE FROM audit_events WHERE seq >= 3").await;
        db.tamper("DELETE FROM audit_checkpoints").await;
        let head2: String = sqlx::query("SELECT hash FROM audit_events WHERE seq = 2")
            .fetch_one(db.store.pool())
            .await
            .unwrap()
            .get(0);
        db.tamper(&format!("UPDATE audit_head SET seq = 2, hash = '{head2}'"))
            .await;
        let fooled = audit::verify::verify(&db.store, Some(&key.public()), None)
            .await
            .unwrap();
        assert_eq!(
            fooled.problem, None,
            "without a kept checkpoint this is undetectable"
        );
        let kept = checkpoint::Checkpoint::parse_text(&cp.to_text()).unwrap();
        let caught = audit::verify::verify(&db.store, Some(&key.public()), Some(&kept))
            .await
            .unwrap();
        let problem = caught.problem.expect("truncation must be found");
        assert_eq!(problem.seq, 3, "{problem}");
        assert!(problem.message.contains("truncated"), "{problem}");
        // A kept checkpoint signed by another key is not evidence.
        let (_d2, other) = signer();
        let caught = audit::verify::verify(&db.store, Some(&other.public()), Some(&kept))
            .await
            .unwrap();
        assert!(caught.problem.is_some());
    }

    pub async fn concurrent_appends_keep_one_chain(db: &TestDb) {
        let mut tasks = Vec::new();
        for t in 0..8 {
            let store = db.store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    let mut tx = store.begin().await.unwrap();
                    audit::append(
                        &mut tx,
                        T0,
                        NewEvent::new("system", "test.event", format!("t{t}:{i}")),
                    )
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let report = audit::verify::verify(&db.store, None, None).await.unwrap();
        assert_eq!((report.events, report.problem), (200, None));
    }

    pub async fn verify_reads_a_consistent_snapshot_while_appending(db: &TestDb) {
        let writer = {
            let store = db.store.clone();
            tokio::spawn(async move {
                for i in 0..150 {
                    let mut tx = store.begin().await.unwrap();
                    audit::append(
                        &mut tx,
                        T0,
                        NewEvent::new("system", "test.event", format!("w:{i}")),
                    )
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                }
            })
        };
        while !writer.is_finished() {
            let report = audit::verify::verify(&db.store, None, None).await.unwrap();
            assert_eq!(report.problem, None, "a live log is not a damaged log");
        }
        writer.await.unwrap();
        let report = audit::verify::verify(&db.store, None, None).await.unwrap();
        assert_eq!((report.events, report.problem), (150, None));
    }

    pub async fn verify_names_problems_across_page_boundaries(db: &TestDb) {
        let page = audit::scan::PAGE;
        let events: Vec<NewEvent> = (0..2 * page + 1)
            .map(|i| NewEvent::new("system", "test.page", format!("n:{i}")))
            .collect();
        let mut tx = db.store.begin().await.unwrap();
        audit::append_batch(&mut tx, T0, events).await.unwrap();
        tx.commit().await.unwrap();
        let ok = audit::verify::verify(&db.store, None, None).await.unwrap();
        assert_eq!((ok.events, ok.problem), (2 * page + 1, None));

        db.tamper(&format!(
            "UPDATE audit_events SET object = 'n:x' WHERE seq = {}",
            page + 5
        ))
        .await;
        let report = audit::verify::verify(&db.store, None, None).await.unwrap();
        assert_eq!(report.problem.unwrap().seq, page + 5);
        assert_eq!(report.events, page + 4);

        db.tamper(&format!(
            "DELETE FROM audit_events WHERE seq = {}",
            page + 1
        ))
        .await;
        let report = audit::verify::verify(&db.store, None, None).await.unwrap();
        assert_eq!(report.problem.unwrap().seq, page + 1, "first row of a page");
    }

    /// On PostgreSQL single events are hashed by the database; both paths must produce exactly
    /// `chain::event_hash`, multi-byte UTF-8 and escapes included.
    pub async fn appended_hashes_match_the_documented_encoding(db: &TestDb) {
        let odd = || {
            NewEvent::new("identity:zoë", "test.unicode", "target:数据库")
                .details(serde_json::json!({ "note": "quote \" back\\slash 🚀 \u{0}" }))
        };
        let mut tx = db.store.begin().await.unwrap();
        audit::append(&mut tx, T0, odd()).await.unwrap();
        audit::append_batch(&mut tx, T0 + 1, vec![odd(), odd()])
            .await
            .unwrap();
        audit::append(&mut tx, T0 + 2, odd()).await.unwrap();
        tx.commit().await.unwrap();
        let mut conn = db.store.pool().acquire().await.unwrap();
        let mut events = audit::recent(&mut conn, 10).await.unwrap();
        events.reverse();
        let mut prev = audit::chain::GENESIS;
        for ev in &events {
            assert_eq!(ev.prev_hash, hex::encode(prev), "seq {}", ev.seq);
            prev = audit::chain::event_hash(&ev.content(), &prev);
            assert_eq!(ev.hash, hex::encode(prev), "seq {}", ev.seq);
        }
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].actor, "identity:zoë");
    }

    pub async fn batch_append_matches_single_appends(db: &TestDb) {
        let events: Vec<NewEvent> = (0..1203)
            .map(|i| {
                NewEvent::new("system", "test.batch", format!("n:{i}"))
                    .outcome(if i % 2 == 0 {
                        Outcome::Allow
                    } else {
                        Outcome::Deny
                    })
                    .details(serde_json::json!({ "i": i, "z": "last", "a": "first" }))
            })
            .collect();
        let mut tx = db.store.begin().await.unwrap();
        let at = audit::append_batch(&mut tx, T0, events).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(at.seq, 1203);
        add_identity(&db.store, "after").await;
        let report = audit::verify::verify(&db.store, None, None).await.unwrap();
        assert_eq!((report.events, report.problem), (1204, None));
        let mut conn = db.store.pool().acquire().await.unwrap();
        let recent = audit::recent(&mut conn, 2).await.unwrap();
        assert_eq!(
            recent[1].details, r#"{"a":"first","i":1202,"z":"last"}"#,
            "keys sorted"
        );
        assert_eq!(recent[1].outcome, "allow");
    }
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
