//! `gatehouse serve` on both backends: health, bootstrap, setup link, clean stop.

use crate::harness::{Server, gatehouse, run, stderr};
use gatehouse_broker::testkit;

const TOKEN: &str = "e2e-bootstrap-token-0123456789abcdef";

#[tokio::test]
async fn serve_on_sqlite_answers_healthz_and_bootstraps_admin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[], &[("GATEHOUSE_BOOTSTRAP_TOKEN", TOKEN)]).await;
    let health: serde_json::Value = reqwest::get(server.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["database"]["backend"], "sqlite");
    let me = reqwest::Client::new()
        .get(server.url("/api/v1/whoami"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert!(
        !server.log().contains(TOKEN),
        "the bootstrap token must never be logged"
    );
    assert!(server.stop().success());

    // Embedded default: one SQLite file (WAL) and the signing key in the data directory.
    assert!(data.join("gatehouse.db").exists());
    let key = data.join("keys/signing-key.pem");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o077,
        0
    );

    // A second start keeps the same admin, token and key.
    let again = Server::start(&data, &[], &[("GATEHOUSE_BOOTSTRAP_TOKEN", TOKEN)]).await;
    let me = reqwest::Client::new()
        .get(again.url("/api/v1/whoami"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert!(again.stop().success());
    let verify = run(gatehouse(&data).args(["audit", "verify"]));
    assert!(verify.status.success(), "{}", stderr(&verify));
}

#[tokio::test]
async fn serve_on_postgres_answers_healthz_then_503_when_the_database_goes() {
    let (name, url) = testkit::create_postgres_database().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--database-url", &url],
        &[("GATEHOUSE_BOOTSTRAP_TOKEN", TOKEN)],
    )
    .await;
    let resp = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let health: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(health["database"]["backend"], "postgres");
    let me = reqwest::Client::new()
        .get(server.url("/api/v1/whoami"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    testkit::drop_postgres_database(&name).await;
    let resp = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(resp.status(), 503);
    let health: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(health["status"], "unavailable");
    // Fail closed: no database, no API.
    let me = reqwest::Client::new()
        .get(server.url("/api/v1/whoami"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 503);
    server.stop();
}

#[tokio::test]
async fn first_start_without_token_prints_a_one_time_setup_link() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], &[]).await;
    let log = server.log();
    let link = log
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("http://")
                .map(|rest| format!("http://{rest}"))
        })
        .unwrap_or_else(|| panic!("no setup link in:\n{log}"));
    assert!(link.contains("/setup?code=ghs_"), "{link}");
    let code = link.split("code=").nth(1).unwrap().to_string();
    let created = reqwest::Client::new()
        .post(server.url("/setup"))
        .form(&[("code", &code)])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let reused = reqwest::Client::new()
        .post(server.url("/setup"))
        .form(&[("code", &code)])
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), 401);
    server.stop();
}

#[tokio::test]
async fn a_short_bootstrap_token_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(gatehouse(dir.path())
        .env("GATEHOUSE_BOOTSTRAP_TOKEN", "short")
        .args(["serve", "--web-listen", "127.0.0.1:0"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("GATEHOUSE_BOOTSTRAP_TOKEN must be at least 24 characters"),
        "{}",
        stderr(&out)
    );
}
