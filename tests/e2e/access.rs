//! The access-model commands as a user runs them: `policy check`, `apply` (direct and through
//! `--server`), `authorize` (what-if) and `sod scan`.

use crate::harness::{Server, gatehouse, run, stdout};

pub(crate) const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/policy.toml");

#[test]
fn policy_check_accepts_the_documented_example_and_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(gatehouse(dir.path()).args(["policy", "check", EXAMPLE]));
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("valid (4 identities, 3 groups, 2 targets, 5 roles"),
        "{}",
        stdout(&out)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[roles]]\nname = \"x\"\nmax_duraton = \"1h\"\n").unwrap();
    let out = run(gatehouse(dir.path()).args(["policy", "check"]).arg(&bad));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("bad.toml:3:1"), "{}", stdout(&out));

    std::fs::write(
        &bad,
        "[[roles]]\nname = \"x\"\ncondition = 'principal.shoe_size == 1'\n",
    )
    .unwrap();
    let out = run(gatehouse(dir.path()).args(["policy", "check"]).arg(&bad));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("role x condition"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn apply_plans_applies_and_is_idempotent_then_authorize_explains() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(gatehouse(dir.path()).args(["apply", EXAMPLE, "--dry-run"]));
    assert!(out.status.success(), "{}", stdout(&out));
    let plan = stdout(&out);
    assert!(plan.contains("+ create role prod-db"), "{plan}");
    assert!(plan.contains("nothing applied (dry run)"), "{plan}");
    // The dry run changed nothing: the same plan again.
    let out = run(gatehouse(dir.path()).args(["apply", EXAMPLE, "--dry-run"]));
    assert_eq!(stdout(&out), plan);

    let out = run(gatehouse(dir.path()).args(["apply", EXAMPLE]));
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("change(s) applied"),
        "{}",
        stdout(&out)
    );
    let out = run(gatehouse(dir.path()).args(["apply", EXAMPLE]));
    assert!(stdout(&out).starts_with("No changes"), "{}", stdout(&out));

    // Standing staging-web allows deploy and root: a login must be named.
    let out =
        run(gatehouse(dir.path()).args(["authorize", "--identity", "alice", "--target", "web-01"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("several logins"), "{}", stdout(&out));
    let out = run(gatehouse(dir.path()).args([
        "authorize",
        "--identity",
        "alice",
        "--target",
        "web-01",
        "--login",
        "root",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("ALLOW"));
    let out = run(gatehouse(dir.path()).args([
        "authorize",
        "--identity",
        "alice",
        "--target",
        "db-01",
        "--login",
        "postgres",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("DENY"));

    // Nobody holds both sides of the SoD rule yet.
    let out = run(gatehouse(dir.path()).args(["sod", "scan"]));
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("No SoD violations"));
}

#[tokio::test]
async fn apply_through_a_running_server_needs_an_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = "e2e-bootstrap-token-0123456789abcdef";
    let server = Server::start(dir.path(), &[], &[("GATEHOUSE_BOOTSTRAP_TOKEN", token)]).await;
    let base = server.url("");
    let out = run(gatehouse(dir.path())
        .args(["apply", EXAMPLE, "--server", base.trim_end_matches('/')])
        .env("GATEHOUSE_TOKEN", "ght_wrong"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::harness::stderr(&out).contains("refused (401"),
        "{}",
        crate::harness::stderr(&out)
    );
    let out = run(gatehouse(dir.path())
        .args(["apply", EXAMPLE, "--server", base.trim_end_matches('/')])
        .env("GATEHOUSE_TOKEN", token));
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    assert!(stdout(&out).contains("+ create role prod-db"));
    server.stop();
}

/// A webhook receiver on a loopback port: answers 500 to the first POST and 204 after, and hands
/// every body it got to the test.
async fn flaky_receiver() -> (u16, tokio::sync::mpsc::UnboundedReceiver<(u16, String)>) {
    receiver(true).await
}

/// A webhook receiver on a loopback port (plain HTTP), answering 204 (500 to the first POST when
/// `fail_first`); hands every body it got to the test.
pub(crate) async fn receiver(
    fail_first: bool,
) -> (u16, tokio::sync::mpsc::UnboundedReceiver<(u16, String)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut served = 0;
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then the body its Content-Length announces.
            let body = loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break Some(text[end + 4..end + 4 + len].to_string());
                    }
                }
            };
            let Some(body) = body else { continue };
            served += 1;
            let status = if served == 1 && fail_first { 500 } else { 204 };
            let head = if status == 500 {
                "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            } else {
                "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
            };
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = tx.send((status, body));
        }
    });
    (port, rx)
}

pub(crate) async fn next_delivery(
    got: &mut tokio::sync::mpsc::UnboundedReceiver<(u16, String)>,
) -> (u16, String) {
    tokio::time::timeout(std::time::Duration::from_secs(30), got.recv())
        .await
        .expect("no webhook delivery within 30 s")
        .unwrap()
}

#[tokio::test]
async fn break_glass_alert_reaches_the_webhook_and_a_failed_delivery_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (port, mut got) = flaky_receiver().await;
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!("[notifications]\nwebhook_url = \"http://127.0.0.1:{port}/hook\"\n"),
    )
    .unwrap();
    let token = "e2e-bootstrap-token-0123456789abcdef";
    let server = Server::start(
        dir.path(),
        &["--config", config.to_str().unwrap()],
        &[("GATEHOUSE_BOOTSTRAP_TOKEN", token)],
    )
    .await;
    let base = server.url("");
    let out = run(gatehouse(dir.path())
        .args(["apply", EXAMPLE, "--server", base.trim_end_matches('/')])
        .env("GATEHOUSE_TOKEN", token));
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));

    let http = crate::harness::http();
    let alice: serde_json::Value = http
        .post(server.url("/api/v1/identities/alice/tokens"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "name": "e2e" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alice = alice["token"].as_str().unwrap().to_string();
    // The request answers at once: delivery happens later, outside the request.
    let started = std::time::Instant::now();
    let resp = http
        .post(server.url("/api/v1/requests"))
        .bearer_auth(&alice)
        .json(&serde_json::json!({ "role": "emergency", "duration": "30m", "reason": "INC-42 db down" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let request: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(request["state"], "approved", "{request}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    let (first_status, first) = next_delivery(&mut got).await;
    let (second_status, second) = next_delivery(&mut got).await;
    assert_eq!((first_status, second_status), (500, 204));
    assert_eq!(first, second, "the retry carries the same message");
    let msg: serde_json::Value = serde_json::from_str(&second).unwrap();
    assert_eq!(msg["event"], "break_glass", "{msg}");
    let text = msg["text"].as_str().unwrap();
    assert!(
        text.contains("break-glass: alice took role emergency") && text.contains("INC-42"),
        "{text}"
    );
    assert_eq!(msg["data"]["identity"], "alice");
    // Delivered: nothing more arrives.
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(4), got.recv())
            .await
            .is_err(),
        "a delivered message was sent again"
    );
    assert!(server.log().contains("webhook delivery failed"));
    server.stop();
}

/// `gatehouse findings` over the documented example: engineering holds `staging-web` (a `root`
/// login) standing, and no privileged role (root, postgres, break-glass) asks for session MFA.
#[test]
fn findings_list_what_to_tighten_and_refuse_unknown_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(gatehouse(dir.path()).args(["apply", EXAMPLE]));
    assert!(out.status.success(), "{}", stdout(&out));
    let out = run(gatehouse(dir.path()).args(["findings"]));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("standing_privileged_access  identity:alice  holds the privileged role staging-web standing (through group engineering)"),
        "{text}"
    );
    assert!(
        text.contains("privileged_role_without_session_mfa  role:emergency"),
        "{text}"
    );
    assert!(text.contains("    do: "), "{text}");
    // One kind, as JSON lines.
    let out = run(gatehouse(dir.path()).args([
        "findings",
        "--kind",
        "privileged_role_without_session_mfa",
        "--json",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let roles: Vec<String> = stdout(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["kind"], "privileged_role_without_session_mfa");
            v["subject"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        roles,
        ["role:emergency", "role:prod-db", "role:staging-web"]
    );
    // Nothing of a kind: exit 0.
    let out = run(gatehouse(dir.path()).args(["findings", "--kind", "unused_api_token"]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("No findings."));
    // An unknown kind names the known ones.
    let out = run(gatehouse(dir.path()).args(["findings", "--kind", "nope"]));
    assert_eq!(out.status.code(), Some(2));
    let err = crate::harness::stderr(&out);
    assert!(
        err.contains("use one of standing_privileged_access"),
        "{err}"
    );
}

#[tokio::test]
async fn findings_over_the_api_are_for_reviewers() {
    let dir = tempfile::tempdir().unwrap();
    let token = "e2e-bootstrap-token-0123456789abcdef";
    let out = run(gatehouse(dir.path()).args(["apply", EXAMPLE]));
    assert!(out.status.success(), "{}", stdout(&out));
    let server = Server::start(dir.path(), &[], &[("GATEHOUSE_BOOTSTRAP_TOKEN", token)]).await;
    let client = crate::harness::http_builder(&[]).build().unwrap();
    let r = client
        .get(server.url("/api/v1/findings"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let all: serde_json::Value = r.json().await.unwrap();
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "standing_privileged_access" && f["subject"] == "identity:alice"),
        "{all}"
    );
    let r = client
        .get(server.url("/api/v1/findings"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    server.stop();
}
