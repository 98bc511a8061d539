//! Storage scenarios of the audit log: append, append-only, tamper detection, checkpoints,
//! snapshots and the pages verify reads. Each runs on both backends (see `main.rs`).

use super::*;

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

/// SQLite keeps a transaction's audit rows until commit (a batch at a time goes out earlier):
/// whatever went out early still rolls back with the change, and a commit writes every row
/// and the head in step.
pub async fn buffered_appends_commit_and_roll_back_with_the_change(db: &TestDb) {
    let batch = |n: usize| -> Vec<NewEvent> {
        (0..n)
            .map(|i| NewEvent::new("system", "test.buffer", format!("n:{i}")))
            .collect()
    };
    for commit in [false, true] {
        let mut tx = db.store.begin().await.unwrap();
        identities::create(&mut tx, &Actor::Cli, T0, NewIdentity::named("buffered"))
            .await
            .unwrap();
        audit::append_batch(&mut tx, T0, batch(1500)).await.unwrap();
        let at = audit::append(&mut tx, T0, NewEvent::new("system", "test.last", "n:last"))
            .await
            .unwrap();
        assert_eq!(at.seq, 1502);
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
            assert_eq!(count(&db.store, "audit_events").await, 0);
            assert_eq!(count(&db.store, "identities").await, 0);
            let mut conn = db.store.pool().acquire().await.unwrap();
            assert_eq!(audit::head(&mut conn).await.unwrap().0, 0);
        }
    }
    assert_eq!(count(&db.store, "audit_events").await, 1502);
    let mut conn = db.store.pool().acquire().await.unwrap();
    assert_eq!(audit::head(&mut conn).await.unwrap().0, 1502);
    drop(conn);
    let report = audit::verify::verify(&db.store, None, None).await.unwrap();
    assert_eq!((report.events, report.problem), (1502, None));
}
