//! Least-privilege findings read from the store, and the `last_used_at` writes they rely on.

use super::*;
use gatehouse_broker::governance::findings::{self, Kind};
use gatehouse_broker::identity::web_sessions::{self, NewSession, Stage, Timeouts};
use gatehouse_broker::identity::{ssh_keys, tokens};

const DAY: i64 = 24 * 3600 * 1000;

async fn kinds_for(store: &Store, who: &str, now: i64) -> Vec<Kind> {
    let mut c = store.pool().acquire().await.unwrap();
    let s = findings::snapshot(&mut c, now).await.unwrap();
    findings::findings(&s)
        .into_iter()
        .filter(|f| f.subject == format!("identity:{who}"))
        .map(|f| f.kind)
        .collect()
}

pub async fn unused_keys_and_tokens_are_findings_until_they_are_used(db: &TestDb) {
    let store = &db.store;
    let dana = add_identity(store, "dana").await;
    let mut tx = store.begin().await.unwrap();
    let (_, secret) = tokens::create(&mut tx, &Actor::Cli, T0, "dana", "ci", None)
        .await
        .unwrap();
    let key = ssh_keys::add(&mut tx, &Actor::Cli, T0, "dana", ALICE_KEY)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // New: nothing is unused yet.
    assert_eq!(kinds_for(store, "dana", T0 + DAY).await, []);
    // A hundred days on, never used: the identity, its key and its token are findings.
    let later = T0 + 100 * DAY;
    assert_eq!(
        kinds_for(store, "dana", later).await,
        [
            Kind::InactiveIdentity,
            Kind::UnusedSshKey,
            Kind::UnusedApiToken
        ]
    );
    // The token authenticates a request and the key signs a login: both recorded.
    let mut c = store.pool().acquire().await.unwrap();
    tokens::authenticate(&mut c, secret.expose(), later)
        .await
        .unwrap();
    ssh_keys::used(&mut c, &key.fingerprint, later)
        .await
        .unwrap();
    let listed = ssh_keys::of_identity(&mut c, &key.identity_id)
        .await
        .unwrap();
    assert_eq!(listed[0].last_used_at_ms, Some(later));
    let listed = tokens::of_identity(&mut c, &key.identity_id).await.unwrap();
    assert_eq!(listed[0].last_used_at_ms, Some(later));
    // Used again within the minute: not written again.
    tokens::authenticate(&mut c, secret.expose(), later + 1_000)
        .await
        .unwrap();
    let listed = tokens::of_identity(&mut c, &key.identity_id).await.unwrap();
    assert_eq!(listed[0].last_used_at_ms, Some(later));
    drop(c);
    assert_eq!(
        kinds_for(store, "dana", later + DAY).await,
        [Kind::InactiveIdentity]
    );
    // She signs in to the web UI: active again.
    let mut tx = store.begin().await.unwrap();
    web_sessions::create(
        &mut tx,
        later + DAY,
        NewSession {
            identity: &dana,
            stage: Stage::Active,
            methods: "password",
            mfa_at_ms: None,
            address: "127.0.0.1",
            user_agent: "test",
        },
        Timeouts::default(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(kinds_for(store, "dana", later + 2 * DAY).await, []);
}
