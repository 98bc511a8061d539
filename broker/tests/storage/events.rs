//! The access event stream: events leave only on commit, reach subscribers (on PostgreSQL through
//! NOTIFY, so a second instance hears them), and every access change bumps `access_version`.

use super::*;
use gatehouse_broker::access::grants::{self, NewGrant, Source};
use gatehouse_broker::events::AccessEvent;
use std::time::Duration;

async fn next_grant_event(rx: &mut tokio::sync::broadcast::Receiver<AccessEvent>) -> AccessEvent {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match rx.recv().await.unwrap() {
                AccessEvent::AccessChanged => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("no event within 5 s")
}

pub async fn grant_events_reach_subscribers_only_after_commit(db: &TestDb) {
    // A second Store on the same database stands for another instance.
    let other = Store::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    let mut here = db.store.subscribe();
    let mut there = other.subscribe();
    // Give the LISTEN connections (PostgreSQL) time to start.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v0 = Store::access_version(&mut db.store.pool().acquire().await.unwrap())
        .await
        .unwrap();

    let mut tx = db.store.begin().await.unwrap();
    let alice = identities::create(&mut tx, &Actor::Cli, T0, NewIdentity::named("alice"))
        .await
        .unwrap();
    let role = roles::create(&mut tx, &Actor::Cli, T0, "prod-db", "")
        .await
        .unwrap();
    let new = NewGrant {
        identity_id: alice.id.clone(),
        role_id: role.id.clone(),
        role: role.name.clone(),
        source: Source::Request,
        request_id: None,
        targets: None,
        login: None,
        not_before_ms: T0,
        not_after_ms: T0 + 3_600_000,
    };
    grants::create(&mut tx, &Actor::Cli, T0, new.clone())
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let mut tx = db.store.begin().await.unwrap();
    let alice = identities::create(&mut tx, &Actor::Cli, T0, NewIdentity::named("alice"))
        .await
        .unwrap();
    let role = roles::create(&mut tx, &Actor::Cli, T0, "prod-db", "")
        .await
        .unwrap();
    let g = grants::create(
        &mut tx,
        &Actor::Cli,
        T0,
        NewGrant {
            identity_id: alice.id,
            role_id: role.id,
            ..new
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let started = next_grant_event(&mut here).await;
    assert!(
        matches!(&started, AccessEvent::GrantStarted { grant_id, .. } if *grant_id == g.id),
        "{started:?}"
    );

    let mut tx = db.store.begin().await.unwrap();
    grants::revoke(&mut tx, &Actor::Cli, T0 + 1, &g.id, "incident over")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let revoked = next_grant_event(&mut here).await;
    assert_eq!(
        revoked,
        AccessEvent::GrantRevoked {
            grant_id: g.id.clone(),
            identity: "alice".into(),
            reason: "incident over".into()
        }
    );
    let v1 = Store::access_version(&mut db.store.pool().acquire().await.unwrap())
        .await
        .unwrap();
    assert!(v1 >= v0 + 2, "{v0} -> {v1}");

    if db.store.backend() == Backend::Postgres {
        // The other instance heard the same, in order, through NOTIFY.
        assert!(matches!(
            next_grant_event(&mut there).await,
            AccessEvent::GrantStarted { .. }
        ));
        assert!(matches!(
            next_grant_event(&mut there).await,
            AccessEvent::GrantRevoked { .. }
        ));
    }
    other.close().await;
}
