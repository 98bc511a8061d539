//! Audit append and verify throughput, with same-shaped plain inserts and a bare scan as anchors.
//! Driven by `bench/audit.sh`; prints `key value` lines.
//!
//! Usage: audit_bench DATABASE_URL TOTAL_EVENTS [SINGLE_EVENTS] [BATCH_SIZE]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_util::StreamExt;
use gatehouse_broker::ledger::audit::{self, NewEvent};
use gatehouse_broker::{Backend, Store, StoreOptions};
use sqlx::{AssertSqlSafe, Executor};
use std::time::Instant;

fn event(i: usize) -> NewEvent {
    NewEvent::new("identity:alice", "session.start", format!("target:db-{:02}", i % 50)).details(
        serde_json::json!({ "session": format!("01J{i:012}"), "login": "postgres", "source": "10.1.2.3:51234" }),
    )
}

/// Same-shaped rows with no chain, inserted the way `append_batch` inserts (same placeholders).
async fn plain_insert(store: &Store, rows: usize, first: usize) {
    let mut tx = store.begin().await.unwrap();
    let mut sql = String::from(
        "INSERT INTO bench_plain (seq, time, actor, action, object, outcome, details, prev_hash, hash) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        let ph: Vec<String> = (1..=9)
            .map(|c| match store.backend() {
                Backend::Sqlite => "?".to_string(),
                Backend::Postgres => format!("${}", r * 9 + c),
            })
            .collect();
        sql.push_str(&format!("({})", ph.join(", ")));
    }
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for r in 0..rows {
        let e = event(first + r);
        q = q
            .bind((first + r) as i64)
            .bind(1_764_000_000_000i64)
            .bind(e.actor)
            .bind(e.action)
            .bind(e.object)
            .bind("success")
            .bind(e.details.to_string())
            .bind("0".repeat(64))
            .bind("0".repeat(64));
    }
    q.execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
}

fn rate(n: usize, secs: f64) -> f64 {
    n as f64 / secs
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = &args[1];
    let total: usize = args[2].parse().unwrap();
    let single: usize = args.get(3).map_or(5_000, |s| s.parse().unwrap());
    let batch: usize = args.get(4).map_or(1_000, |s| s.parse().unwrap());
    let store = Store::connect(url, &StoreOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    store
        .pool()
        .execute(
            "CREATE TABLE IF NOT EXISTS bench_plain (seq BIGINT PRIMARY KEY, time BIGINT NOT NULL, \
             actor TEXT NOT NULL, action TEXT NOT NULL, object TEXT NOT NULL, outcome TEXT NOT NULL, \
             details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
        )
        .await
        .unwrap();
    println!("backend {}", store.backend().name());

    // One event per transaction: chained, then the plain anchor.
    let t = Instant::now();
    for i in 0..single {
        let mut tx = store.begin().await.unwrap();
        audit::append(&mut tx, 1_764_000_000_000, event(i))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    println!(
        "single_chain_per_s {:.0}",
        rate(single, t.elapsed().as_secs_f64())
    );
    let t = Instant::now();
    for i in 0..single {
        plain_insert(&store, 1, i).await;
    }
    println!(
        "single_plain_per_s {:.0}",
        rate(single, t.elapsed().as_secs_f64())
    );

    // Eight writers at once, one event per transaction.
    let t = Instant::now();
    let per = single / 8;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                let mut tx = store.begin().await.unwrap();
                audit::append(&mut tx, 1_764_000_000_000, event(w * per + i))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "concurrent8_chain_per_s {:.0}",
        rate(per * 8, t.elapsed().as_secs_f64())
    );

    // Batched up to TOTAL events; the anchor inserts a tenth as many plain rows the same way.
    let have = single + per * 8;
    let todo = total.saturating_sub(have);
    let t = Instant::now();
    let mut done = 0;
    while done < todo {
        let n = batch.min(todo - done);
        let mut tx = store.begin().await.unwrap();
        audit::append_batch(
            &mut tx,
            1_764_000_000_000,
            (0..n).map(|i| event(done + i)).collect(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        done += n;
        if done % 100_000 < batch {
            eprintln!("  appended {} / {todo}", done);
        }
    }
    println!(
        "batched_chain_per_s {:.0}",
        rate(todo, t.elapsed().as_secs_f64())
    );
    let plain_n = (todo / 10).max(batch);
    let t = Instant::now();
    let mut done = 0;
    while done < plain_n {
        let n = batch.min(plain_n - done).min(1_000);
        plain_insert(&store, n, single + done).await;
        done += n;
    }
    println!(
        "batched_plain_per_s {:.0}",
        rate(plain_n, t.elapsed().as_secs_f64())
    );

    // Reading every event without checking anything: the floor under verify (the paged reader
    // verify uses), and a plain row-by-row stream for comparison.
    let t = Instant::now();
    let mut n = 0usize;
    let mut snap = audit::scan::Snapshot::open(&store).await.unwrap();
    while let Some(page) = snap.next_page().await {
        n += page.unwrap().len();
    }
    println!("events {n}");
    println!("scan_s {:.3}", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut s = audit::stream_all(store.pool());
    while let Some(ev) = s.next().await {
        ev.unwrap();
    }
    drop(s);
    println!("row_stream_s {:.3}", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let report = audit::verify::verify(&store, None, None).await.unwrap();
    assert_eq!(report.problem, None);
    println!("verify_inproc_s {:.3}", t.elapsed().as_secs_f64());
    store
        .pool()
        .execute("DROP TABLE bench_plain")
        .await
        .unwrap();
    store.close().await;
}
