//! Single sign-on in chromium through a real OpenID provider: the npm package `oidc-provider`
//! (pinned by scripts/node-tools.sh) on a loopback port. A person signs in with "Sign in with
//! SSO", gets an identity and the mapped group; an unverified e-mail never links a local account
//! and a name claim never takes one over; a verified e-mail never links a local account either,
//! until an administrator links it (`mfa link-sso`), and then the account's own TOTP is asked
//! for; a callback with a forged state is refused; an ID token that has expired is refused.

use super::Browser;
use super::directory::audit;
use crate::harness::Server;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BOOTSTRAP: &str = "sso-bootstrap-token-0123456789";

fn node_tools() -> PathBuf {
    let dir = std::env::var("NODE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/gatehouse/node")
        });
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "{} has no oidc-provider: run scripts/node-tools.sh (scripts/test.sh does)",
        dir.display()
    );
    dir
}

struct Provider(Child);

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn provider(port: u16, redirect: &str, skew_s: u64) -> Provider {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oidc-provider.mjs");
    let child = Command::new("node")
        .arg(script)
        .env("NODE_TOOLS", node_tools())
        .env("PORT", port.to_string())
        .env("CLIENT_ID", "gatehouse")
        .env("CLIENT_SECRET", "gatehouse-client-secret-for-tests")
        .env("REDIRECT_URI", redirect)
        .env("SKEW_SECONDS", skew_s.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let p = Provider(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "oidc-provider did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

/// At the provider's development login and consent pages.
async fn provider_login(b: &Browser, who: &str) {
    b.text("input[name=login]").await;
    b.fill("input[name=login]", who).await;
    b.fill("input[name=password]", "any-password").await;
    b.click("button[type=submit]").await;
    // Consent.
    b.wait_text("button[type=submit]", "Continue").await;
    b.click("button[type=submit]").await;
}

#[tokio::test]
async fn browser_oidc_sign_in_links_the_identity_and_refuses_forged_state_and_expired_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.path().join("oidc.secret"),
        "gatehouse-client-secret-for-tests",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("gatehouse.toml"),
        format!(
            "[oidc]\nissuer = \"http://127.0.0.1:{port}\"\nclient_id = \"gatehouse\"\n\
             client_secret_file = \"oidc.secret\"\nscopes = [\"email\", \"profile\", \"groups\"]\n\
             group_mapping = {{ engineers = \"eng\" }}\n"
        ),
    )
    .unwrap();
    let cfg = dir.path().join("gatehouse.toml").display().to_string();
    let data = dir.path().join("data");
    let server = Server::start_https(
        &data,
        &["--config", &cfg],
        &[("GATEHOUSE_BOOTSTRAP_TOKEN", BOOTSTRAP)],
    )
    .await;
    let redirect = format!("{}/login/oidc/callback", server.base);
    let op = provider(port, &redirect, 0);
    let b = Browser::start(&server.base).await;

    // Sign in with SSO: at the provider, then back, signed in as olga with the mapped group.
    b.goto("/login").await;
    b.click("#sso").await;
    provider_login(&b, "olga").await;
    assert_eq!(b.wait_text("#signed-in-as", "olga").await, "olga");
    b.shot("sso-signed-in").await;
    let signed = audit(&data, "directory.sign_in");
    assert_eq!(signed.len(), 1, "{signed:?}");
    assert_eq!(
        signed[0]["details"]["groups_added"],
        serde_json::json!(["eng"])
    );
    let linked = audit(&data, "identity.link");
    assert_eq!(linked[0]["object"], "identity:olga");
    assert_eq!(linked[0]["details"]["subject"], "olga");

    // security: an address the provider has not verified never links. A local "victim" owns
    // victim@example.org; "unverified-victim" claims it unverified and gets an identity of its
    // own. And a name claim never takes over an unlinked local account ("admin").
    let policy = dir.path().join("victim.toml");
    std::fs::write(
        &policy,
        "[[identities]]\nusername = \"victim\"\nemail = \"victim@example.org\"\n",
    )
    .unwrap();
    let out = crate::harness::run(
        crate::harness::gatehouse(&data).args(["apply", &policy.display().to_string()]),
    );
    assert!(out.status.success(), "{out:?}");
    let u = Browser::start(&server.base).await;
    u.goto("/login").await;
    u.click("#sso").await;
    provider_login(&u, "unverified-victim").await;
    assert_eq!(
        u.wait_text("#signed-in-as", "unverified-victim").await,
        "unverified-victim"
    );
    drop(u);
    let linked = audit(&data, "identity.link");
    assert!(
        linked.iter().all(|e| e["object"] != "identity:victim"),
        "{linked:?}"
    );
    let a = Browser::start(&server.base).await;
    a.goto("/login").await;
    a.click("#sso").await;
    provider_login(&a, "admin").await;
    let page = a.wait_text("body", "Single sign-on failed").await;
    assert!(page.contains("is not linked to you"), "{page}");
    drop(a);

    // security: a verified e-mail never links a local account either ("victim", made by
    // `apply`, owns victim@example.org, which the provider verified for its "victim").
    let v = Browser::start(&server.base).await;
    v.goto("/login").await;
    v.click("#sso").await;
    provider_login(&v, "victim").await;
    let page = v.wait_text("body", "Single sign-on failed").await;
    assert!(page.contains("not linked to you"), "{page}");
    drop(v);
    assert!(
        audit(&data, "identity.link")
            .iter()
            .all(|e| e["object"] != "identity:victim")
    );
    // An administrator links it explicitly; victim's own second factor is then asked for after
    // the provider's sign-in (single sign-on replaces the password, not the authenticator app).
    let out = crate::harness::run(crate::harness::gatehouse(&data).args([
        "--config",
        &cfg,
        "mfa",
        "link-sso",
        "--identity",
        "victim",
        "--subject",
        "victim",
    ]));
    assert!(out.status.success(), "{out:?}");
    let link = audit(&data, "identity.link");
    let link = link.last().unwrap();
    assert_eq!(
        (&link["actor"], &link["object"]),
        (
            &serde_json::json!("cli"),
            &serde_json::json!("identity:victim")
        )
    );
    let secret = super::enroll_totp(&data, "victim");
    let v = Browser::start(&server.base).await;
    v.goto("/login").await;
    v.click("#sso").await;
    provider_login(&v, "victim").await;
    v.text("#code-form").await;
    assert_eq!(v.path().await, "/login/second-factor");
    let code = super::fresh_code(&secret).await;
    v.fill("#code", &code).await;
    v.click("#verify").await;
    assert_eq!(v.wait_text("#signed-in-as", "victim").await, "victim");
    let signed = audit(&data, "web.sign_in");
    assert_eq!(
        signed.last().unwrap()["details"]["methods"],
        "oidc+totp",
        "{signed:?}"
    );
    drop(v);

    // (A browser of its own: an abandoned sign-in at the provider confuses its next one.)
    let f = Browser::start(&server.base).await;
    // A callback whose state is not the one this browser started with: refused, no session.
    f.goto("/login/oidc").await;
    f.text("input[name=login]").await;
    f.goto("/login/oidc/callback?code=stolen-code&state=forged-state")
        .await;
    let page = f.html().await;
    assert!(page.contains("the sign-in state does not match"), "{page}");
    f.goto("/").await;
    f.text("#login-form").await;
    // A callback with no sign-in started at all.
    f.goto("/login/oidc/callback?code=x&state=y").await;
    assert!(f.html().await.contains("was not started here"));

    drop(f);

    // The provider's clock is an hour behind: its ID tokens have expired when they arrive.
    drop(op);
    let _op = provider(port, &redirect, 3600);
    let b = Browser::start(&server.base).await;
    b.goto("/login").await;
    b.click("#sso").await;
    provider_login(&b, "olga").await;
    let page = b.wait_text("body", "Single sign-on failed").await;
    assert!(page.contains("the ID token is not valid"), "{page}");
    b.goto("/").await;
    b.text("#login-form").await;
    assert_eq!(
        audit(&data, "directory.sign_in").len(),
        3,
        "no sign-in past olga's, unverified-victim's and victim's"
    );
}
