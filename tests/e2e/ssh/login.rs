//! Logging in to the gateway beyond a registered key: client certificates and the TOTP
//! second factor.

use super::*;

#[tokio::test]
async fn engineers_log_in_with_gatehouse_client_certificates_only() {
    let lab = Lab::start().await;
    // A key nobody registered, certified for alice by `gatehouse ssh sign-user-key`.
    keygen(&lab.path("laptop"), "alice@new-laptop");
    let out = gatehouse(&lab.path("data"))
        .args([
            "ssh",
            "sign-user-key",
            "--identity",
            "alice",
            "--valid",
            "1h",
        ])
        .arg(lab.path("laptop.pub"))
        .output()
        .unwrap();
    assert_eq!(
        ok(&out).trim(),
        lab.path("laptop-cert.pub").display().to_string()
    );
    // `whoami` on db-01 as the key (and certificate) stored under NAME.
    let whoami = |name: &str| lab.ssh(name, "root@db-01").arg("whoami").output().unwrap();
    // Copies of the same private key under other names, so OpenSSH (which picks up NAME-cert.pub
    // beside NAME by itself) presents exactly one thing each time.
    let copy_key = |name: &str| {
        let to = lab.path(name);
        std::fs::copy(lab.path("laptop"), &to).unwrap();
        std::fs::copy(lab.path("laptop.pub"), to.with_extension("pub")).unwrap();
    };
    let out = whoami("laptop");
    assert_eq!(ok(&out), "root\n");
    let s = lab.sessions().await;
    assert_eq!(s[0]["identity"], "alice", "{s:?}");
    assert!(!lab.audit("ssh.client_cert_issued").await.is_empty());

    // The same key certified by the CA targets trust (as if a session certificate leaked):
    // refused, like the bare unregistered key.
    copy_key("forged");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(lab.path("data/keys/ssh_user_ca"))
        .args([
            "-I",
            "gatehouse-user identity=alice",
            "-n",
            "alice",
            "-V",
            "-5m:+1h",
        ])
        .arg(lab.path("forged.pub"))
        .status()
        .unwrap();
    assert!(status.success());
    let out = whoami("forged");
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stdout));
    // The client CA itself, the fields Gatehouse writes, but a window that ended an hour ago:
    // refused. The same certificate valid now is accepted, so the window alone refused it.
    let client_cert = |name: &str, window: &str| {
        copy_key(name);
        let status = Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(lab.path("data/keys/ssh_client_ca"))
            .args(["-I", "gatehouse-user alice", "-n", "alice", "-V", window])
            .arg(lab.path(&format!("{name}.pub")))
            .status()
            .unwrap();
        assert!(status.success());
    };
    client_cert("expired", "-2h:-1h");
    let out = whoami("expired");
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stdout));
    client_cert("current", "-5m:+1h");
    let out = whoami("current");
    assert_eq!(ok(&out), "root\n");
    copy_key("bare");
    let out = whoami("bare");
    assert_eq!(out.status.code(), Some(255));
    // An unknown identity cannot be certified.
    let out = gatehouse(&lab.path("data"))
        .args(["ssh", "sign-user-key", "--identity", "mallory"])
        .arg(lab.path("laptop.pub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no identity mallory"));
    lab.server.stop();
}

/// Logs in with russh as alice's key, answering the TOTP prompt with `code` (None: stop at the
/// prompt). Returns whether the login succeeded and, if so, `echo hi`'s output.
async fn login_with_totp(lab: &Lab, code: Option<&str>) -> (bool, String) {
    use russh::client::KeyboardInteractiveAuthResponse as K;
    let key = russh::keys::load_secret_key(lab.path("alice"), None).unwrap();
    let config = std::sync::Arc::new(russh::client::Config::default());
    let mut h = russh::client::connect(config, lab.server.ssh, AnyHost)
        .await
        .unwrap();
    let r = h
        .authenticate_publickey(
            "root@db-01",
            russh::keys::PrivateKeyWithHashAlg::new(std::sync::Arc::new(key), None),
        )
        .await
        .unwrap();
    match r {
        russh::client::AuthResult::Failure {
            partial_success: true,
            ..
        } => {}
        other => panic!("the key alone must not be enough: {other:?}"),
    }
    let Some(code) = code else {
        return (false, String::new());
    };
    let prompt = h
        .authenticate_keyboard_interactive_start("root@db-01", None)
        .await
        .unwrap();
    let K::InfoRequest { prompts, .. } = prompt else {
        panic!("no TOTP prompt: {prompt:?}");
    };
    assert_eq!(prompts[0].prompt, "TOTP code: ");
    let done = h
        .authenticate_keyboard_interactive_respond(vec![code.to_string()])
        .await
        .unwrap();
    if !matches!(done, K::Success) {
        return (false, String::new());
    }
    let mut ch = h.channel_open_session().await.unwrap();
    ch.exec(true, "echo hi").await.unwrap();
    let mut out = Vec::new();
    while let Some(msg) = ch.wait().await {
        match msg {
            russh::ChannelMsg::Data { data } => out.extend_from_slice(&data),
            russh::ChannelMsg::ExitStatus { .. }
            | russh::ChannelMsg::Eof
            | russh::ChannelMsg::Close
                if !out.is_empty() =>
            {
                break;
            }
            _ => {}
        }
    }
    (true, text(&out))
}

/// Enrolls a TOTP for alice (`gatehouse mfa enroll-totp`) and makes db-01's role ask for it at
/// login; returns her TOTP secret.
async fn alice_needs_totp_on_db_01(lab: &Lab) -> String {
    let out = gatehouse(&lab.path("data"))
        .args(["mfa", "enroll-totp", "--identity", "alice"])
        .output()
        .unwrap();
    let printed = ok(&out);
    assert!(printed.starts_with("otpauth://totp/"), "{printed}");
    let secret = printed
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .to_string();
    lab.put_db_root(&["db-01"], serde_json::json!({ "session_mfa": true }))
        .await;
    secret
}

/// alice's TOTP code now.
fn code_now(secret: &str) -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    gatehouse_broker::identity::mfa::code_at(secret, now_ms).unwrap()
}

#[tokio::test]
async fn security_totp_guesses_are_limited_per_identity_across_connections() {
    let lab = Lab::start().await;
    let secret = alice_needs_totp_on_db_01(&lab).await;
    // Ten wrong codes, each on a connection of its own (one connection allows three).
    for _ in 0..10 {
        assert!(!login_with_totp(&lab, Some("000000")).await.0);
    }
    // The eleventh code within the minute is not even checked, right as it is.
    assert!(!login_with_totp(&lab, Some(&code_now(&secret))).await.0);
    // Only checked codes reach the audit log: the ten failures.
    let results: Vec<String> = lab
        .audit("mfa.totp")
        .await
        .iter()
        .map(|e| e["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(results.len(), 10, "{results:?}");
    assert!(results.iter().all(|r| r == "failure"), "{results:?}");
    assert!(lab.sessions().await.is_empty());
    lab.server.stop();
}

#[tokio::test]
async fn roles_with_session_mfa_ask_for_a_totp_code_at_ssh_login() {
    let lab = Lab::start().await;
    let secret = alice_needs_totp_on_db_01(&lab).await;

    // OpenSSH in batch mode cannot answer the prompt: the key alone does not get in.
    let out = lab
        .ssh("alice", "root@db-01")
        .arg("echo hi")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    // A wrong code is refused; the right one gets in, once.
    assert!(!login_with_totp(&lab, Some("000000")).await.0);
    let code = code_now(&secret);
    let (ok_login, output) = login_with_totp(&lab, Some(&code)).await;
    assert!(ok_login);
    assert_eq!(output, "hi\n");
    assert!(
        !login_with_totp(&lab, Some(&code)).await.0,
        "a code is accepted once"
    );
    // Stopping at the prompt opens nothing.
    login_with_totp(&lab, None).await;
    let results: Vec<String> = lab
        .audit("mfa.totp")
        .await
        .iter()
        .map(|e| e["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        results.iter().filter(|r| *r == "success").count(),
        1,
        "{results:?}"
    );
    assert_eq!(lab.sessions().await.len(), 1);
    lab.server.stop();
}

#[tokio::test]
async fn a_target_that_cannot_trust_the_ca_is_reached_with_a_vaulted_key() {
    let lab = Lab::start().await;
    // db-02 trusts no CA: only the key in its authorized_keys.
    let d = lab.path("db-02");
    std::fs::create_dir_all(&d).unwrap();
    keygen(&d.join("vaulted"), "gatehouse@db-02");
    std::fs::copy(d.join("vaulted.pub"), d.join("authorized_keys")).unwrap();
    let sshd = Sshd::start_trusting(&d, None, Some(&d.join("authorized_keys")));
    let (st, v) = lab
        .api(
            reqwest::Method::POST,
            "/api/v1/targets",
            TOKEN,
            Some(serde_json::json!({ "name": "db-02", "kind": "ssh",
                "address": format!("127.0.0.1:{}", sshd.port), "host_key": sshd.host_key_pub })),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    lab.put_db_root(&["db-01", "db-02"], serde_json::json!({}))
        .await;
    // With the CA alone, db-02 refuses Gatehouse.
    let out = lab
        .ssh("alice", "root@db-02")
        .arg("echo hi")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot reach db-02"),
        "{}",
        text(&out.stderr)
    );

    let out = gatehouse(&lab.path("data"))
        .args(["ssh", "vault-key", "--target", "db-02", "--login", "root"])
        .arg(d.join("vaulted"))
        .output()
        .unwrap();
    assert!(ok(&out).starts_with("vaulted ssh-ed25519 "));
    let out = lab
        .ssh("alice", "root@db-02")
        .arg("echo hi")
        .output()
        .unwrap();
    assert_eq!(ok(&out), "hi\n");
    // Sealed at rest: the database never holds the key in clear.
    let pem = std::fs::read_to_string(d.join("vaulted")).unwrap();
    let body = pem.lines().nth(1).unwrap();
    let mut stored = Vec::new();
    for f in ["gatehouse.db", "gatehouse.db-wal"] {
        stored.extend(std::fs::read(lab.path("data").join(f)).unwrap_or_default());
    }
    assert!(stored.len() > 10_000, "the database files were read");
    assert!(!String::from_utf8_lossy(&stored).contains(body));
    assert!(!lab.audit("target.credential_set").await.is_empty());

    // Removed: back to the CA, which db-02 does not trust.
    let out = gatehouse(&lab.path("data"))
        .args([
            "ssh",
            "vault-key",
            "--target",
            "db-02",
            "--login",
            "root",
            "--remove",
        ])
        .output()
        .unwrap();
    ok(&out);
    let out = lab
        .ssh("alice", "root@db-02")
        .arg("echo hi")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    drop(sshd);
    lab.server.stop();
}

/// alice with a TOTP enrolled and db-01 needing one at login: a connection on which her key has
/// signed for `root@db-01` and which now waits for the code; and her key.
async fn halfway_to_db_01(
    lab: &Lab,
) -> (
    russh::client::Handle<AnyHost>,
    std::sync::Arc<russh::keys::PrivateKey>,
) {
    alice_needs_totp_on_db_01(lab).await;
    let key = std::sync::Arc::new(russh::keys::load_secret_key(lab.path("alice"), None).unwrap());
    let config = std::sync::Arc::new(russh::client::Config::default());
    let mut h = russh::client::connect(config, lab.server.ssh, AnyHost)
        .await
        .unwrap();
    assert!(matches!(
        h.authenticate_publickey(
            "root@db-01",
            russh::keys::PrivateKeyWithHashAlg::new(key.clone(), None)
        )
        .await
        .unwrap(),
        russh::client::AuthResult::Failure {
            partial_success: true,
            ..
        }
    ));
    (h, key)
}

#[tokio::test]
async fn security_the_totp_step_belongs_to_the_ssh_user_the_key_signed_for() {
    use russh::client::KeyboardInteractiveAuthResponse as K;
    let lab = Lab::start().await;
    let (mut h, _) = halfway_to_db_01(&lab).await;
    // The code step under another SSH user (another login, another target): no prompt...
    let r = h
        .authenticate_keyboard_interactive_start("postgres@db-02", None)
        .await
        .unwrap();
    assert!(matches!(r, K::Failure { .. }), "{r:?}");
    // ...and the half-finished login is gone: not even its own user gets the prompt now.
    let r = h
        .authenticate_keyboard_interactive_start("root@db-01", None)
        .await
        .unwrap();
    assert!(matches!(r, K::Failure { .. }), "{r:?}");
    lab.server.stop();
}

#[tokio::test]
async fn security_signing_again_does_not_buy_more_totp_guesses() {
    use russh::client::KeyboardInteractiveAuthResponse as K;
    let lab = Lab::start().await;
    let (mut h, key) = halfway_to_db_01(&lab).await;
    let mut r = h
        .authenticate_keyboard_interactive_start("root@db-01", None)
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(matches!(r, K::InfoRequest { .. }), "{r:?}");
        r = h
            .authenticate_keyboard_interactive_respond(vec!["000000".into()])
            .await
            .unwrap();
    }
    assert!(matches!(r, K::Failure { .. }), "{r:?}");
    // Signing again on the same connection: no new prompt, no new guesses.
    assert!(matches!(
        h.authenticate_publickey(
            "root@db-01",
            russh::keys::PrivateKeyWithHashAlg::new(key.clone(), None)
        )
        .await
        .unwrap(),
        russh::client::AuthResult::Failure {
            partial_success: false,
            ..
        }
    ));
    let r = h
        .authenticate_keyboard_interactive_start("root@db-01", None)
        .await
        .unwrap();
    assert!(matches!(r, K::Failure { .. }), "{r:?}");
    lab.server.stop();
}
