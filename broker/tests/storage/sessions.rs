//! The sessions table: start, end (once), denials and orphans, with their audit events.

use super::*;
use gatehouse_broker::access::sessions::{self, End, Filter, NewSession};

fn new_session(id: &str, identity: &identities::Identity) -> NewSession {
    NewSession {
        id: id.into(),
        identity_id: identity.id.clone(),
        identity: identity.username.clone(),
        target: "db-01".into(),
        login: "root".into(),
        protocol: "ssh".into(),
        kind: "session".into(),
        grant_kind: "standing".into(),
        grant_id: "a1".into(),
        source: "127.0.0.1:5555".into(),
    }
}

pub async fn sessions_start_end_once_and_are_audited(db: &TestDb) {
    let store = &db.store;
    let alice = add_identity(store, "alice").await;
    let v0 = Store::access_version(&mut store.pool().acquire().await.unwrap())
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    sessions::start(&mut tx, T0, &new_session("s1", &alice))
        .await
        .unwrap();
    sessions::start(&mut tx, T0 + 1, &new_session("s2", &alice))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut conn = store.pool().acquire().await.unwrap();
    let live = sessions::list(
        &mut conn,
        &Filter {
            live: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        live.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["s2", "s1"]
    );
    drop(conn);

    let end = End {
        reason: "client_closed".into(),
        bytes_up: 10,
        bytes_down: 5_000_000_000,
        recording: Some("2026/11/25/s1.cast".into()),
        kind: Some("shell".into()),
        requests: None,
    };
    let mut tx = store.begin().await.unwrap();
    let ended = sessions::end(&mut tx, T0 + 60_000, "s1", &end)
        .await
        .unwrap()
        .unwrap();
    // A second end changes nothing.
    assert!(
        sessions::end(&mut tx, T0 + 90_000, "s1", &end)
            .await
            .unwrap()
            .is_none()
    );
    sessions::denied(
        &mut tx,
        T0,
        "bob",
        "db-02",
        "root",
        "127.0.0.1:1",
        &["no grant".into()],
    )
    .await
    .unwrap();
    // What a stop left open is closed with a reason.
    assert_eq!(
        sessions::end_orphans(&mut tx, T0 + 120_000, "gateway_restarted")
            .await
            .unwrap(),
        1
    );
    tx.commit().await.unwrap();

    assert_eq!(ended.kind, "shell");
    assert_eq!(ended.ended_at_ms, Some(T0 + 60_000));
    assert_eq!(ended.bytes_down, 5_000_000_000);
    assert_eq!(ended.recording.as_deref(), Some("2026/11/25/s1.cast"));
    let mut conn = store.pool().acquire().await.unwrap();
    let s2 = sessions::by_id(&mut conn, "s2").await.unwrap().unwrap();
    assert_eq!(s2.end_reason.as_deref(), Some("gateway_restarted"));
    let mine = sessions::list(
        &mut conn,
        &Filter {
            identity: Some("alice".into()),
            live: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(mine.len(), 2);
    // Sessions are audited, and they are not access changes (no catalog reload per session).
    let a = actions(store).await;
    for action in ["session.start", "session.end", "session.denied"] {
        assert!(a.iter().any(|x| x == action), "{a:?}");
    }
    let v1 = Store::access_version(&mut conn).await.unwrap();
    assert_eq!(v0, v1);
}
