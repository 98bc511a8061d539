//! Upstream trust per app (`upstream_pin_sha256`, `upstream_ca_file`, else the outbound roots)
//! and apps at a host of their own (`host`).

use super::*;
use sha2::{Digest, Sha256};

/// An HTTPS upstream with a self-signed certificate for 127.0.0.1; answers `tls-ok`.
async fn tls_upstream() -> (SocketAddr, rcgen::CertifiedKey<rcgen::KeyPair>) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![made.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"tls-ok"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, made)
}

/// Adds apps (TOML `[[targets]]`) and a role giving alice all of them.
async fn add_apps(w: &World, targets: &str, names: &[&str]) {
    let upstream = echo_upstream().await;
    let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let text = format!(
        "{}\n{targets}\n[[roles]]\nname = \"more\"\ntargets = {{ names = [{}] }}\nprotocols = [\"http\"]\n\n[[assignments]]\nrole = \"more\"\nto = \"alice\"\nkind = \"standing\"\n",
        POLICY,
        names.join(", ")
    )
    .replace("UPSTREAM", &format!("http://{upstream}"));
    let d = doc::parse("policy.toml", &text).unwrap();
    apply::apply(&w.db.store, &Actor::Cli, SystemClock.now_ms(), &d, false)
        .await
        .unwrap();
}

#[tokio::test]
async fn security_an_https_upstream_is_trusted_by_its_pin_its_ca_file_or_not_at_all() {
    let w = world().await;
    let (addr, made) = tls_upstream().await;
    let pin = hex::encode(Sha256::digest(made.cert.der()));
    let colons = pin
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap().to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    let ca = w._dir.path().join("upstream-ca.pem");
    std::fs::write(&ca, made.cert.pem()).unwrap();
    let wrong = "ab".repeat(32);
    let targets = format!(
        r#"
[[targets]]
name = "pinned"
kind = "http"
address = "https://{addr}"
app = {{ upstream_pin_sha256 = "{colons}" }}

[[targets]]
name = "wrongpin"
kind = "http"
address = "https://{addr}"
app = {{ upstream_pin_sha256 = "{wrong}" }}

[[targets]]
name = "cafile"
kind = "http"
address = "https://{addr}"
app = {{ upstream_ca_file = "{}" }}

[[targets]]
name = "roots"
kind = "http"
address = "https://{addr}"
"#,
        ca.display()
    );
    add_apps(&w, &targets, &["pinned", "wrongpin", "cafile", "roots"]).await;
    for (app, status, body) in [
        ("pinned", 200, "tls-ok"),
        ("cafile", 200, "tls-ok"),
        ("wrongpin", 502, "not trusted"),
        // The test's outbound roots are empty: a self-signed upstream is refused by default.
        ("roots", 502, "not trusted"),
    ] {
        let cookie = sign_in(&w, "alice", app).await;
        let got = get_signed_in(&w, &format!("{app}.apps.test:8443"), "/", &cookie).await;
        assert_eq!(got.status, status, "{app}: {}", got.body);
        assert!(got.body.contains(body), "{app}: {}", got.body);
    }
}

#[tokio::test]
async fn an_app_with_a_host_of_its_own_is_served_there_only() {
    let w = world().await;
    add_apps(
        &w,
        r#"
[[targets]]
name = "ci"
kind = "http"
address = "UPSTREAM"
app = { host = "jenkins.corp.test" }

[[targets]]
name = "grab"
kind = "http"
address = "UPSTREAM"
app = { host = "echo.apps.test" }
"#,
        &["ci", "grab"],
    )
    .await;
    let cookie = sign_in_at(&w, "alice", "ci", "jenkins.corp.test:8443").await;
    let got = get_signed_in(&w, "Jenkins.Corp.Test:8443", "/", &cookie).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert!(
        got.body.contains(r#""x-gatehouse-user":["alice"]"#),
        "{}",
        got.body
    );
    // Not also at NAME.DOMAIN.
    let got = get(&w, "ci.apps.test:8443", "/", &[]).await;
    assert_eq!(got.status, 404);
    // A host under the apps domain is nobody's own: echo.apps.test stays echo's, and "grab"
    // is not served at all.
    let cookie = sign_in(&w, "alice", "echo").await;
    let got = get_signed_in(&w, "echo.apps.test:8443", "/", &cookie).await;
    assert_eq!(got.status, 200);
    let got = get(&w, "grab.apps.test:8443", "/", &[]).await;
    assert_eq!(got.status, 404);
}
