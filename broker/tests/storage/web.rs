//! Web sign-in storage: passwords as argon2id hashes, browser sessions ending by timeout,
//! disable and factor change, single-use recovery codes.

use super::*;
use gatehouse_broker::identity::web_sessions::{self, NewSession, Stage, Timeouts};
use gatehouse_broker::identity::{passwords, recovery};

async fn session(store: &Store, who: &identities::Identity, t: Timeouts) -> String {
    let mut tx = store.begin().await.unwrap();
    let (cookie, _) = web_sessions::create(
        &mut tx,
        T0,
        NewSession {
            identity: who,
            stage: Stage::Active,
            methods: "password",
            mfa_at_ms: None,
            address: "127.0.0.1",
            user_agent: "test",
        },
        t,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    cookie.expose().to_string()
}

async fn live(store: &Store, cookie: &str, now: i64, t: Timeouts) -> bool {
    let mut c = store.pool().acquire().await.unwrap();
    web_sessions::lookup(&mut c, cookie, now, t)
        .await
        .unwrap()
        .is_some()
}

pub async fn security_web_sessions_end_on_timeouts_disable_and_factor_change(db: &TestDb) {
    let store = &db.store;
    let alice = add_identity(store, "alice").await;
    let t = Timeouts {
        idle_ms: 60_000,
        absolute_ms: 600_000,
        second_factor_ms: 60_000,
    };
    // Only the hash of the cookie is stored.
    let a = session(store, &alice, t).await;
    let stored: String = sqlx::query("SELECT id FROM web_sessions")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert_ne!(stored, a);
    assert!(live(store, &a, T0 + 1_000, t).await);
    assert!(!live(store, "not-a-session", T0, t).await);
    // Idle: kept alive by use, ended by a pause longer than the idle timeout.
    assert!(live(store, &a, T0 + 50_000, t).await);
    assert!(live(store, &a, T0 + 100_000, t).await);
    assert!(!live(store, &a, T0 + 170_000, t).await);
    // Absolute: ended however active.
    let b = session(store, &alice, t).await;
    let mut now = T0;
    while now + 50_000 < T0 + 600_000 {
        now += 50_000;
        assert!(live(store, &b, now, t).await);
    }
    assert!(!live(store, &b, T0 + 600_000, t).await);
    // A factor change ends the identity's other sessions.
    let keep = session(store, &alice, t).await;
    let other = session(store, &alice, t).await;
    let keep_id = gatehouse_broker::secrets::hash(&keep);
    let phc = passwords::hash("a long enough passphrase").unwrap();
    let mut tx = store.begin().await.unwrap();
    passwords::set_hash(&mut tx, &Actor::Cli, T0, "alice", &phc, Some(&keep_id))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(live(store, &keep, T0 + 1_000, t).await);
    assert!(!live(store, &other, T0 + 1_000, t).await);
    // Disabling the identity ends them all.
    let mut tx = store.begin().await.unwrap();
    identities::set_status(&mut tx, &Actor::Cli, T0, "alice", Status::Disabled)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(!live(store, &keep, T0 + 2_000, t).await);
    assert_eq!(count(store, "web_sessions").await, 0);
    let acts = actions(store).await;
    assert!(acts.iter().filter(|a| *a == "web.sign_in").count() >= 4);
    assert!(acts.contains(&"web.sessions_ended".to_string()));
    assert!(acts.contains(&"password.set".to_string()));
}

pub async fn security_passwords_are_argon2id_hashes_and_empty_never_matches(db: &TestDb) {
    let store = &db.store;
    let alice = add_identity(store, "alice").await;
    assert!(passwords::validate("alice", "").is_err());
    assert!(passwords::validate("alice", "short").is_err());
    assert!(passwords::validate("alice", "ALICE").is_err());
    let phc = passwords::hash("correct horse battery staple").unwrap();
    assert!(phc.starts_with("$argon2id$"));
    let mut tx = store.begin().await.unwrap();
    passwords::set_hash(&mut tx, &Actor::Cli, T0, "alice", &phc, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let stored = passwords::stored(&mut store.pool().acquire().await.unwrap(), &alice.id)
        .await
        .unwrap();
    assert!(!stored.clone().unwrap().contains("correct horse"));
    assert!(passwords::check(stored.clone(), "correct horse battery staple".into()).await);
    assert!(!passwords::check(stored, String::new()).await);
    // No account (or no password): the decoy is checked and nothing matches.
    assert!(!passwords::check(None, "correct horse battery staple".into()).await);
    assert!(!passwords::check(None, String::new()).await);
}

pub async fn security_recovery_codes_are_single_use_and_per_identity(db: &TestDb) {
    let store = &db.store;
    let alice = add_identity(store, "alice").await;
    let bob = add_identity(store, "bob").await;
    let mut tx = store.begin().await.unwrap();
    let codes = recovery::generate(&mut tx, &Actor::Cli, T0, &alice.id, "alice")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(codes.len(), recovery::COUNT);
    let redeem = |id: String, who: &'static str, code: String| async move {
        let mut tx = store.begin().await.unwrap();
        let ok = recovery::redeem(&mut tx, T0, &id, who, &code)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        ok
    };
    // Not bob's, whoever types it.
    assert!(!redeem(bob.id.clone(), "bob", codes[0].clone()).await);
    // alice's, once, in any case and spacing.
    assert!(redeem(alice.id.clone(), "alice", codes[0].to_lowercase()).await);
    assert!(!redeem(alice.id.clone(), "alice", codes[0].clone()).await);
    let left = recovery::remaining(&mut store.pool().acquire().await.unwrap(), &alice.id)
        .await
        .unwrap();
    assert_eq!(left, recovery::COUNT as i64 - 1);
    // A new set replaces the old one.
    let mut tx = store.begin().await.unwrap();
    recovery::generate(&mut tx, &Actor::Cli, T0, &alice.id, "alice")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(!redeem(alice.id.clone(), "alice", codes[1].clone()).await);
}
