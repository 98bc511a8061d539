//! The journeys of the web UI, in chromium: sign-in with password + TOTP and with a passkey
//! alone; a request approved by someone else and its grant's countdown; a cross-site form
//! post refused.

use super::{Browser, PASSWORD, fresh_code, set_password};
use crate::harness::{Server, gatehouse, run, stderr};
use fantoccini::Locator;
use tempfile::TempDir;

/// A server on HTTPS with alice (requester), bob (approver in group security) and a role
/// alice may request.
struct Site {
    _dir: TempDir,
    server: Server,
}

async fn site() -> Site {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let policy = r#"
[[identities]]
username = "alice"
attributes = { department = "payments", manager = "bob" }

[[identities]]
username = "bob"

[[groups]]
name = "security"
members = ["bob"]

[[targets]]
name = "db-01"
kind = "ssh"
address = "127.0.0.1:1"

[[roles]]
name = "prod-db"
targets = { names = ["db-01"] }
logins = ["postgres"]
max_duration = "4h"
approvals = [{ from = "group:security", count = 1 }]

[[assignments]]
role = "prod-db"
to = "alice"
kind = "eligible"
"#;
    std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
    let out = run(gatehouse(&data)
        .arg("apply")
        .arg(dir.path().join("policy.toml")));
    assert!(out.status.success(), "{}", stderr(&out));
    set_password(&data, "alice");
    set_password(&data, "bob");
    // Debug logging, so that the check for secrets in the log sees everything the server says.
    let server = Server::start_https(
        &data,
        &["--log-level", "debug"],
        &[("GATEHOUSE_BOOTSTRAP_TOKEN", "ui-bootstrap-token-0123456789")],
    )
    .await;
    set_password(&data, "admin");
    Site { _dir: dir, server }
}

#[tokio::test]
async fn browser_sign_in_with_password_and_totp_then_with_a_passkey_alone() {
    let s = site().await;
    let b = Browser::start(&s.server.base).await;
    b.goto("/").await;
    // Not signed in: the sign-in page, coming back afterwards.
    b.text("#login-form").await;
    b.shot("sign-in").await;
    // A wrong password: the same message as for an unknown user.
    b.fill("#username", "alice").await;
    b.fill("#password", "not the password").await;
    b.click("#sign-in").await;
    assert_eq!(b.text("#form-error").await, "Wrong username or password.");
    b.fill("#username", "nobody").await;
    b.fill("#password", "not the password").await;
    b.click("#sign-in").await;
    assert_eq!(b.text("#form-error").await, "Wrong username or password.");

    // First sign-in: no second factor yet, so the account page asks for one.
    b.sign_in("alice", PASSWORD, None).await;
    assert_eq!(b.path().await, "/account");
    b.click("#totp-setup").await;
    let secret = b.text("#totp-secret").await;
    assert!(
        b.html().await.contains("<svg"),
        "the QR code is on the page"
    );
    b.shot("totp-enrollment").await;
    b.fill("#code", "000000").await;
    b.click("#totp-confirm").await;
    assert!(b.text("#code-error").await.contains("did not match"));
    let code = fresh_code(&secret).await;
    b.fill("#code", &code).await;
    b.click("#totp-confirm").await;
    assert!(b.text(".flash").await.contains("Authenticator app set up"));
    b.shot("account").await;

    // A sign-in halfway through (alice's password right, her code not given yet) is not
    // finished by another user's credentials: what follows is bob's sign-in, as bob.
    b.sign_out().await;
    b.goto("/login").await;
    b.fill("#username", "alice").await;
    b.fill("#password", PASSWORD).await;
    b.click("#sign-in").await;
    b.text("#code-form").await;
    b.sign_in("bob", PASSWORD, None).await;

    // Password + TOTP.
    b.sign_out().await;
    b.sign_in("alice", PASSWORD, Some(&secret)).await;
    assert_eq!(b.path().await, "/");
    b.shot("my-access").await;

    // Register a passkey with Chrome's virtual authenticator...
    let authenticator = b.add_virtual_authenticator().await;
    b.goto("/account").await;
    b.fill("#passkey-name", "laptop").await;
    b.click("#passkey-add").await;
    assert!(
        b.text(".flash").await.contains("Passkey added"),
        "{}",
        b.html().await
    );
    assert!(b.text("#passkeys").await.contains("laptop"));
    assert_eq!(b.virtual_credentials(&authenticator).await.len(), 1);

    // ...and sign in with it alone: username, then the passkey; no password, no code.
    b.sign_out().await;
    b.fill("#username", "alice").await;
    b.click("#passkey-sign-in").await;
    assert_eq!(b.text("#signed-in-as").await, "alice");
    assert_eq!(b.path().await, "/");

    // The audit trail has each sign-in with its method.
    let out = run(gatehouse(&s.server_data()).args(["audit", "verify"]));
    assert!(out.status.success(), "{}", stderr(&out));

    // security: none of the secrets of these sign-ins is in the server's (debug) log: the
    // password, the TOTP seed, the session cookie.
    let cookie =
        b.c.get_all_cookies()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.name().ends_with("gh_session"))
            .map(|c| c.value().to_string())
            .unwrap();
    let log = s.server.log();
    assert!(log.lines().count() > 10, "the server logged at debug level");
    for (what, secret) in [
        ("password", PASSWORD),
        ("TOTP seed", &secret),
        ("session", &cookie),
    ] {
        assert!(!log.contains(secret), "the {what} is in the log");
    }
    b.close().await;
}

#[tokio::test]
async fn browser_request_approved_by_another_shows_the_grant_with_a_countdown() {
    let s = site().await;
    let b = Browser::start(&s.server.base).await;
    // alice asks for prod-db.
    b.sign_in("alice", PASSWORD, None).await;
    b.goto("/requests/new").await;
    b.click("#role option[value='prod-db']").await;
    b.fill("#duration", "9h").await;
    b.fill("#reason", "rotate the replication password").await;
    b.click("#submit-request").await;
    // Too long: the error sits next to the duration field.
    assert!(
        b.text("#duration-error").await.contains("4h"),
        "{}",
        b.html().await
    );
    b.shot("request-form-error").await;
    b.fill("#duration", "1h").await;
    b.click("#submit-request").await;
    assert!(b.text(".flash").await.contains("Request sent"));
    assert_eq!(b.text("#just-created .state").await, "pending");
    b.shot("my-requests").await;
    // Nobody approves their own request: alice's queue is empty.
    b.goto("/approvals").await;
    b.text("#queue-empty").await;

    // A cross-site form post (from another origin, without the CSRF token) is refused.
    let forged = format!(
        "data:text/html,<form id=f method=post action='{}/requests/new'>\
         <input name=role value=prod-db><input name=duration value=1h><input name=reason value=x></form>\
         <script>document.getElementById('f').submit()</script>",
        s.server.base
    );
    b.c.goto(&forged).await.unwrap();
    assert!(
        b.text("#error-message").await.contains("another site"),
        "{}",
        b.html().await
    );
    b.goto("/requests").await;
    assert_eq!(
        b.c.find_all(Locator::Css("tr.request"))
            .await
            .unwrap()
            .len(),
        1
    );
    b.sign_out().await;

    // bob approves with a comment.
    b.sign_in("bob", PASSWORD, None).await;
    b.goto("/approvals").await;
    let item = b.text(".request-item[data-requester='alice']").await;
    assert!(item.contains("rotate the replication password"), "{item}");
    assert!(
        item.contains("payments"),
        "the requester's department is shown: {item}"
    );
    b.shot("approvals").await;
    b.fill(".request-item input[name=comment]", "ok for today")
        .await;
    b.click(".request-item button.approve").await;
    assert!(
        b.text(".flash").await.contains("Approved"),
        "{}",
        b.html().await
    );
    b.text("#queue-empty").await;
    b.sign_out().await;

    // alice sees the grant, live, with its countdown.
    b.sign_in("alice", PASSWORD, None).await;
    b.goto("/").await;
    let row = b.text("tr.grant[data-role='prod-db']").await;
    assert!(row.contains("active"), "{row}");
    let countdown = b.text("tr.grant[data-role='prod-db'] .countdown").await;
    assert!(
        countdown.starts_with("0:59:") || countdown.starts_with("1:00:"),
        "countdown: {countdown}"
    );
    assert!(b.text("#reach").await.contains("postgres@db-01@localhost"));
    b.shot("my-access-with-grant").await;
    b.close().await;
}

#[tokio::test]
async fn browser_passkey_as_second_factor_and_single_use_recovery_codes() {
    let s = site().await;
    let b = Browser::start(&s.server.base).await;
    b.sign_in("alice", PASSWORD, None).await;
    // Recovery codes first (shown once), then a passkey.
    b.click("#recovery-new").await;
    let codes = b.text("#recovery-codes").await;
    let code = codes.lines().next().unwrap().trim().to_string();
    assert_eq!(codes.lines().count(), 10, "{codes}");
    b.shot("recovery-codes").await;
    b.add_virtual_authenticator().await;
    b.goto("/account").await;
    b.click("#passkey-add").await;
    b.wait_text(".flash", "Passkey added").await;
    b.sign_out().await;

    // Password, then the passkey as the second factor.
    b.goto("/login").await;
    b.fill("#username", "alice").await;
    b.fill("#password", PASSWORD).await;
    b.click("#sign-in").await;
    b.text("#passkey-second").await;
    b.shot("second-factor").await;
    b.click("#passkey-second").await;
    assert_eq!(b.text("#signed-in-as").await, "alice");
    b.sign_out().await;

    // Password, then a recovery code: once.
    for attempt in 0..2 {
        b.goto("/login").await;
        b.fill("#username", "alice").await;
        b.fill("#password", PASSWORD).await;
        b.click("#sign-in").await;
        b.click("details summary").await;
        b.fill("#recovery", &code.to_lowercase()).await;
        b.click("details button").await;
        if attempt == 0 {
            b.wait_text(".flash", "You used a recovery code").await;
            assert_eq!(b.text("#signed-in-as").await, "alice");
            b.sign_out().await;
        } else {
            assert!(b.text("#form-error").await.contains("not valid"));
        }
    }
    b.close().await;
}

#[tokio::test]
async fn security_web_login_state_is_bound_to_one_username() {
    let s = site().await;
    let b = Browser::start(&s.server.base).await;
    // A failed attempt for alice, then bob's valid credentials: signed in as bob, not alice.
    b.goto("/login").await;
    b.fill("#username", "alice").await;
    b.fill("#password", "wrong password for alice").await;
    b.click("#sign-in").await;
    b.text("#form-error").await;
    b.fill("#username", "bob").await;
    b.fill("#password", PASSWORD).await;
    b.click("#sign-in").await;
    assert_eq!(b.text("#signed-in-as").await, "bob");
    // An open redirect through `next` stays on this site, also through a tab, which browsers
    // drop from a URL ("/\t/evil.example" is "//evil.example").
    for next in ["//evil.example/", "/%09/evil.example"] {
        b.sign_out().await;
        b.goto(&format!("/login?next={next}")).await;
        b.fill("#username", "bob").await;
        b.fill("#password", PASSWORD).await;
        b.click("#sign-in").await;
        assert_eq!(b.text("#signed-in-as").await, "bob", "next={next}");
        let url = b.c.current_url().await.unwrap();
        assert_eq!(url.host_str(), Some("localhost"), "{url}");
    }
    b.close().await;
}

/// An administrator with a password alone gets a session good only for setting up a second
/// factor: every page leads back to the account page, API calls riding on its cookie are 403
/// `second_factor_required`; once an authenticator app is set up, the admin pages open.
#[tokio::test]
async fn security_browser_an_administrator_signed_in_with_a_password_alone_can_only_enrol() {
    let s = site().await;
    let b = Browser::start(&s.server.base).await;
    b.sign_in("admin", PASSWORD, None).await;
    assert_eq!(b.path().await, "/account");
    assert!(b.text(".alert").await.contains("holds a privilege"));
    b.shot("account-enrol-required").await;
    for page in ["/admin", "/audit", "/", "/approvals", "/sessions"] {
        b.goto(page).await;
        assert_eq!(b.path().await, "/account", "{page}");
    }
    let answer =
        b.c.execute(
            "return fetch('/api/v1/identities').then(r => r.status + ' ' + r.statusText)",
            vec![],
        )
        .await
        .unwrap();
    assert!(answer.as_str().unwrap().starts_with("403"), "{answer}");
    let code =
        b.c.execute(
            "return fetch('/api/v1/whoami').then(r => r.json()).then(j => j.error.code)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(code.as_str(), Some("second_factor_required"));
    // Setting up an authenticator app is allowed, and then the session is a full one.
    b.click("#totp-setup").await;
    let secret = b.text("#totp-secret").await;
    let code = fresh_code(&secret).await;
    b.fill("#code", &code).await;
    b.click("#totp-confirm").await;
    assert!(b.text(".flash").await.contains("Authenticator app set up"));
    b.goto("/admin").await;
    assert_eq!(b.path().await, "/admin");
    // Signing in again takes the code.
    b.sign_out().await;
    b.sign_in("admin", PASSWORD, Some(&secret)).await;
    b.goto("/audit").await;
    assert_eq!(b.path().await, "/audit");
    // Every page an administrator reaches from the navigation: axe-core finds nothing serious.
    let mut serious = Vec::new();
    for page in [
        "/",
        "/requests/new",
        "/requests",
        "/approvals",
        "/sessions",
        "/audit",
        "/findings",
        "/admin",
        "/account",
    ] {
        b.goto(page).await;
        for v in b.axe_serious().await {
            serious.push(format!("{page}: {v}"));
        }
    }
    assert!(serious.is_empty(), "axe-core: {serious:#?}");
    b.close().await;
}

#[tokio::test]
async fn browser_admin_applies_policy_and_reads_the_audit_log() {
    let s = site().await;
    let b = Browser::start(&s.server.base).await;
    let secret = super::enroll_totp(&s.server_data(), "admin");
    b.sign_in("admin", PASSWORD, Some(&secret)).await;
    b.goto("/admin").await;
    assert!(
        b.text("tr.identity[data-username='alice']")
            .await
            .contains("active")
    );
    // A broken policy: the error names the line.
    b.fill("#policy-text", "[[identities]]\nusername = ").await;
    b.click("#dry-run").await;
    assert!(
        b.text("#policy-error").await.contains("policy:2:"),
        "{}",
        b.html().await
    );
    // Dry run, then apply: the same plan, then dave exists. (The file is the whole truth:
    // what apply made and the file drops would be removed, so it keeps the site's policy.)
    let policy = std::fs::read_to_string(s._dir.path().join("policy.toml")).unwrap()
        + "\n[[identities]]\nusername = \"dave\"\n";
    b.fill("#policy-text", &policy).await;
    b.click("#dry-run").await;
    let plan = b.text("#plan").await;
    assert!(plan.contains("create identity dave"), "{plan}");
    assert!(!plan.contains("disable"), "{plan}");
    assert!(
        b.c.find_all(Locator::Css("tr.identity[data-username='dave']"))
            .await
            .unwrap()
            .is_empty()
    );
    b.click("#apply").await;
    b.wait_text("#plan", "Applied").await;
    b.text("tr.identity[data-username='dave']").await;
    b.shot("admin").await;
    // Disable alice from the page.
    b.click("tr.identity[data-username='alice'] button").await;
    b.wait_text("tr.identity[data-username='alice']", "disabled")
        .await;
    // The audit log viewer, filtered by an action prefix.
    b.goto("/audit?action=identity.").await;
    let rows = b.text("#events").await;
    assert!(rows.contains("identity.status"), "{rows}");
    assert!(rows.contains("identity:alice"), "{rows}");
    b.shot("audit").await;
    b.close().await;
}

impl Site {
    fn server_data(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}", self.server.log());
        }
    }
}
