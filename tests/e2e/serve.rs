//! `gatehouse serve` on both backends: health, bootstrap, setup link, clean stop.

use crate::harness::{Server, gatehouse, run, stderr};
use gatehouse_broker::testkit;

const TOKEN: &str = "e2e-bootstrap-token-0123456789abcdef";

async fn health(server: &Server) -> (u16, serde_json::Value) {
    let resp = crate::harness::http()
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn serve_on_sqlite_answers_healthz_and_bootstraps_admin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[], &[("GATEHOUSE_BOOTSTRAP_TOKEN", TOKEN)]).await;
    let (status, body) = health(&server).await;
    assert_eq!(
        (status, body["database"]["backend"].as_str()),
        (200, Some("sqlite"))
    );
    assert_eq!(server.whoami_status(TOKEN).await, 200);
    assert!(
        !server.log().contains(TOKEN),
        "the bootstrap token must never be logged"
    );
    assert!(server.stop().success());

    // Embedded default: one SQLite file and the signing key (mode 0600) in the data directory.
    assert!(data.join("gatehouse.db").exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("keys/signing-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0);

    // A second start keeps the same admin, token and key; the log stays verifiable.
    let again = Server::start(&data, &[], &[("GATEHOUSE_BOOTSTRAP_TOKEN", TOKEN)]).await;
    assert_eq!(again.whoami_status(TOKEN).await, 200);
    assert!(again.stop().success());
    // Each stop signs a final checkpoint; verify checks it with the key in the data directory.
    let verify = run(gatehouse(&data).args(["audit", "verify"]));
    assert!(verify.status.success(), "{}", stderr(&verify));
    let report = crate::harness::stdout(&verify);
    assert!(
        report.contains("event(s)") && !report.contains(" 0 signed checkpoint"),
        "{report}"
    );
}

#[tokio::test]
async fn serve_on_postgres_answers_healthz_then_503_when_the_database_goes() {
    let (name, url) = testkit::create_postgres_database().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("GATEHOUSE_BOOTSTRAP_TOKEN", TOKEN)];
    let server = Server::start(dir.path(), &["--database-url", &url], &env).await;
    let (status, body) = health(&server).await;
    assert_eq!(
        (status, body["database"]["backend"].as_str()),
        (200, Some("postgres"))
    );
    assert_eq!(server.whoami_status(TOKEN).await, 200);

    testkit::drop_postgres_database(&name).await;
    let (status, body) = health(&server).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("unavailable"))
    );
    // Fail closed: no database, no API.
    assert_eq!(server.whoami_status(TOKEN).await, 503);
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
    assert_eq!(server.redeem_setup_status(&code).await, 200);
    assert_eq!(
        server.redeem_setup_status(&code).await,
        401,
        "the link works once"
    );
    server.stop();
}

#[tokio::test]
async fn a_short_bootstrap_token_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(gatehouse(dir.path())
        .env("GATEHOUSE_BOOTSTRAP_TOKEN", "short")
        .args(["serve", "--web-listen", "127.0.0.1:0"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("GATEHOUSE_BOOTSTRAP_TOKEN must be at least 24 characters"),
        "{err}"
    );
}
