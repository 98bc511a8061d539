//! `gatehouse audit verify | checkpoint | export` on a real data directory, tampered with the
//! way someone with access to the SQLite file would.

use crate::harness::{gatehouse, run, stderr, stdout};
use gatehouse_broker::ledger::audit::{self, NewEvent};
use gatehouse_broker::ledger::store::sqlite_url;
use gatehouse_broker::{Store, StoreOptions};
use std::path::Path;

/// A data directory whose log holds `n` events, written through the binary and the broker.
async fn data_dir_with_events(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = run(gatehouse(dir.path()).arg("migrate"));
    assert!(out.status.success(), "{}", stderr(&out));
    // The key `serve` would have created on first start.
    let key = dir.path().join("keys/signing-key.pem");
    gatehouse_broker::keys::SigningKeyPair::load_or_create(&key).unwrap();
    let store = open(dir.path()).await;
    for i in 0..n {
        let mut tx = store.begin().await.unwrap();
        let ev = NewEvent::new("cli", "test.event", format!("thing:{i}"))
            .details(serde_json::json!({ "i": i }));
        audit::append(&mut tx, 1_764_000_000_000 + i as i64 * 1000, ev)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    store.close().await;
    dir
}

async fn open(dir: &Path) -> Store {
    Store::connect(
        &sqlite_url(&dir.join("gatehouse.db")),
        &StoreOptions::default(),
    )
    .await
    .unwrap()
}

/// What someone with write access to the file does: drop the append-only triggers, then edit.
async fn tamper(dir: &Path, sql: &str) {
    use sqlx::{AnyConnection, Connection};
    let mut conn = AnyConnection::connect(&sqlite_url(&dir.join("gatehouse.db")))
        .await
        .unwrap();
    gatehouse_broker::testkit::tamper(&mut conn, gatehouse_broker::Backend::Sqlite, sql).await;
    conn.close().await.unwrap();
}

/// `gatehouse audit verify --public-key KEY --checkpoint FILE`.
fn verify_against(dir: &Path, public_key: &str, checkpoint: &Path) -> std::process::Output {
    run(gatehouse(dir)
        .args([
            "audit",
            "verify",
            "--public-key",
            public_key,
            "--checkpoint",
        ])
        .arg(checkpoint))
}

#[tokio::test]
async fn untouched_log_verifies() {
    let dir = data_dir_with_events(20).await;
    let out = run(gatehouse(dir.path()).args(["audit", "verify"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("audit log intact: 20 event(s)"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn every_edited_column_is_caught_and_named() {
    let columns = [
        ("time", "time + 1"),
        ("time", "'noon'"),
        ("seq", "seq + 100"),
        ("actor", "'mallory'"),
        ("action", "'test.nothing'"),
        ("object", "'thing:x'"),
        ("outcome", "'failure'"),
        ("details", "'{}'"),
        ("details", "CAST(x'c328' AS TEXT)"),
        ("prev_hash", "'00'"),
        ("hash", "upper(hash)"),
    ];
    for (col, value) in columns {
        let dir = data_dir_with_events(10).await;
        tamper(
            dir.path(),
            &format!("UPDATE audit_events SET {col} = {value} WHERE seq = 7"),
        )
        .await;
        let out = run(gatehouse(dir.path()).args(["audit", "verify"]));
        let err = stderr(&out);
        if col == "hash" {
            // Upper-case hex is the same hash: not a change of meaning, accepted.
            assert_eq!(out.status.code(), Some(0), "{col}: {err}");
            continue;
        }
        assert_eq!(out.status.code(), Some(1), "{col}: {err}");
        assert!(err.contains("audit log damaged at seq 7"), "{col}: {err}");
    }
}

#[tokio::test]
async fn a_deleted_middle_row_is_named() {
    let dir = data_dir_with_events(10).await;
    tamper(dir.path(), "DELETE FROM audit_events WHERE seq = 4").await;
    let out = run(gatehouse(dir.path()).args(["audit", "verify"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("seq 4"), "{}", stderr(&out));
}

#[tokio::test]
async fn deleting_the_last_rows_fails_against_a_saved_checkpoint() {
    let dir = data_dir_with_events(12).await;
    let cp = run(gatehouse(dir.path()).args(["audit", "checkpoint"]));
    assert!(cp.status.success(), "{}", stderr(&cp));
    let text = stdout(&cp);
    assert!(text.contains("size: 12"), "{text}");
    let saved = dir.path().join("kept-checkpoint.txt");
    std::fs::write(&saved, &text).unwrap();
    let public_key = text
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .unwrap()
        .to_string();

    // Only the public key and the kept checkpoint are needed: no private key on the auditor's side.
    std::fs::remove_dir_all(dir.path().join("keys")).unwrap();
    let ok = verify_against(dir.path(), &public_key, &saved);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));

    // Delete the tail, cover the tracks in the head row and the stored checkpoints.
    tamper(
        dir.path(),
        "DELETE FROM audit_events WHERE seq > 9; DELETE FROM audit_checkpoints; \
         UPDATE audit_head SET seq = 9, hash = (SELECT hash FROM audit_events WHERE seq = 9)",
    )
    .await;
    let plain = run(gatehouse(dir.path()).args(["audit", "verify"]));
    assert_eq!(
        plain.status.code(),
        Some(0),
        "undetectable without a kept checkpoint: {}",
        stderr(&plain)
    );
    let out = verify_against(dir.path(), &public_key, &saved);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("audit log damaged at seq 10"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
}

#[tokio::test]
async fn deleting_the_last_rows_is_caught_by_the_chain_head() {
    let dir = data_dir_with_events(6).await;
    tamper(dir.path(), "DELETE FROM audit_events WHERE seq > 4").await;
    let out = run(gatehouse(dir.path()).args(["audit", "verify"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("seq 5"), "{}", stderr(&out));
}

#[tokio::test]
async fn a_forged_checkpoint_file_is_refused() {
    let dir = data_dir_with_events(5).await;
    let cp = stdout(&run(gatehouse(dir.path()).args(["audit", "checkpoint"])));
    let forged = dir.path().join("forged.txt");
    std::fs::write(&forged, cp.replace("size: 5", "size: 4")).unwrap();
    let out = run(gatehouse(dir.path())
        .args(["audit", "verify", "--checkpoint"])
        .arg(&forged));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid signature"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn checkpoint_never_signs_with_a_stray_key() {
    let dir = data_dir_with_events(2).await;
    std::fs::remove_dir_all(dir.path().join("keys")).unwrap();
    let out = run(gatehouse(dir.path()).args(["audit", "checkpoint"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no signing key at"),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("keys").exists(),
        "no key may be created by a one-off command"
    );
}

#[tokio::test]
async fn export_writes_json_lines_since_a_time() {
    let dir = data_dir_with_events(5).await;
    let out = run(gatehouse(dir.path()).args(["audit", "export"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(
        lines[0]["details"]["i"], 0,
        "details are JSON, not a string"
    );
    assert_eq!(lines[0]["time"], "2025-11-24T16:00:00.000Z");
    // Events are a second apart from 16:00:00.
    let since =
        run(gatehouse(dir.path()).args(["audit", "export", "--since", "2025-11-24T16:00:03Z"]));
    assert_eq!(stdout(&since).lines().count(), 2);
    let bad = run(gatehouse(dir.path()).args(["audit", "export", "--since", "last tuesday"]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("RFC 3339"));
}
