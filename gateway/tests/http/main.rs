//! The app gateway in-process over a real database, in front of a small upstream that echoes
//! what it receives: the sign-in hand-off (state cookie, one-time code, host-only app cookie),
//! per-request decisions, what the app sees in headers, and what is refused; app sessions as
//! sessions with signed request logs in [`recording`].
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use gatehouse_broker::access::apps;
use gatehouse_broker::identity::web_sessions::{self, NewSession, Stage, Timeouts};
use gatehouse_broker::keys::SigningKeyPair;
use gatehouse_broker::provisioning::apply::{self, doc};
use gatehouse_broker::testkit::TestDb;
use gatehouse_broker::{Actor, Backend, Clock, SystemClock};
use gatehouse_gateway::http::{self, Settings, Shared};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POLICY: &str = r#"
[[identities]]
username = "alice"
email = "alice@example.com"

[[identities]]
username = "bob"

[[groups]]
name = "eng"
members = ["alice"]

[[targets]]
name = "echo"
kind = "http"
address = "UPSTREAM"

[[targets]]
name = "other"
kind = "http"
address = "UPSTREAM"
app = { user_header = "X-WEBAUTH-USER" }

[[roles]]
name = "echo-users"
targets = { names = ["echo", "other"] }
protocols = ["http"]

[[assignments]]
role = "echo-users"
to = "alice"
kind = "standing"
"#;

/// An upstream that answers every request with the headers it got, as JSON.
async fn echo_upstream() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |mut req: hyper::Request<hyper::body::Incoming>| async move {
                        if req.uri().path() == "/ws" {
                            // A websocket echo: the handshake, then every byte back.
                            let up = hyper::upgrade::on(&mut req);
                            tokio::spawn(async move {
                                if let Ok(io) = up.await {
                                    let (mut r, mut w) =
                                        tokio::io::split(hyper_util::rt::TokioIo::new(io));
                                    let _ = tokio::io::copy(&mut r, &mut w).await;
                                }
                            });
                            let mut r = hyper::Response::new(Full::new(Bytes::new()));
                            *r.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
                            let h = r.headers_mut();
                            h.insert("connection", "upgrade".parse().unwrap());
                            h.insert("upgrade", "websocket".parse().unwrap());
                            h.insert(
                                "sec-websocket-accept",
                                "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".parse().unwrap(),
                            );
                            return Ok::<_, std::convert::Infallible>(r);
                        }
                        let mut h: HashMap<String, Vec<String>> = HashMap::new();
                        for (k, v) in req.headers() {
                            h.entry(k.as_str().into())
                                .or_default()
                                .push(v.to_str().unwrap_or("?").into());
                        }
                        let body =
                            serde_json::json!({ "path": req.uri().to_string(), "headers": h });
                        let mut r = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
                        if req.uri().path() == "/cookie" {
                            for c in [
                                "sid=1; Path=/; Domain=apps.test; HttpOnly",
                                "__Host-gh_app=fixed; Path=/; Secure",
                            ] {
                                r.headers_mut().append("set-cookie", c.parse().unwrap());
                            }
                        }
                        if req.uri().path() == "/go-home" {
                            *r.status_mut() = hyper::StatusCode::FOUND;
                            r.headers_mut()
                                .insert("location", format!("http://{addr}/home").parse().unwrap());
                        }
                        Ok::<_, std::convert::Infallible>(r)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

struct World {
    db: TestDb,
    gateway: SocketAddr,
    key: Arc<SigningKeyPair>,
    /// Signs request log manifests (the gateway's recording key).
    signer: Arc<SigningKeyPair>,
    recordings: std::path::PathBuf,
    stop: tokio_util::sync::CancellationToken,
    served: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let db = TestDb::new(Backend::Sqlite).await;
    let upstream = echo_upstream().await;
    let text = POLICY.replace("UPSTREAM", &format!("http://{upstream}"));
    let d = doc::parse("policy.toml", &text).unwrap();
    apply::apply(&db.store, &Actor::Cli, SystemClock.now_ms(), &d, false)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = SigningKeyPair::load_or_create(&dir.path().join("assert.pem")).unwrap();
    let key = Arc::new(key);
    let (signer, _) = SigningKeyPair::load_or_create(&dir.path().join("signing.pem")).unwrap();
    let signer = Arc::new(signer);
    let recordings = dir.path().join("recordings");
    let roots = rustls::RootCertStore::empty();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let shared = Arc::new(
        Shared::new(
            db.store.clone(),
            Default::default(),
            Arc::new(SystemClock),
            Settings {
                domain: "apps.test".into(),
                public_port: 8443,
                web_origin: "https://gatehouse.test".into(),
                upstream_tls: tls,
                header_timeout: std::time::Duration::from_secs(5),
                recordings_dir: recordings.clone(),
                strict_recording: true,
                max_body: 1024,
                upstream_timeout: std::time::Duration::from_secs(60),
            },
            key.clone(),
            signer.clone(),
        )
        .with_sealing(Arc::new(sealing_key())),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = l.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let served = tokio::spawn(http::serve(l, None, shared, stop.clone()));
    World {
        db,
        gateway,
        key,
        signer,
        recordings,
        stop,
        served: Some(served),
        _dir: dir,
    }
}

/// One response: status, headers, body.
struct Got {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
}

async fn get(w: &World, host: &str, path: &str, extra: &[(&str, &str)]) -> Got {
    send(w, "GET", host, path, extra, "").await
}

async fn send(
    w: &World,
    method: &str,
    host: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &'static str,
) -> Got {
    let s = tokio::net::TcpStream::connect(w.gateway).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    if !extra.iter().any(|(k, _)| *k == "accept") {
        b = b.header("accept", "text/html");
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let r = send
        .send_request(b.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = String::from_utf8_lossy(&r.into_body().collect().await.unwrap().to_bytes()).into();
    Got {
        status,
        headers,
        body,
    }
}

/// A GET with the app cookie `cookie` (signed in to the app at `host`).
async fn get_signed_in(w: &World, host: &str, path: &str, cookie: &str) -> Got {
    get(
        w,
        host,
        path,
        &[("cookie", &format!("__Host-gh_app={cookie}"))],
    )
    .await
}

fn set_cookie(g: &Got, name: &str) -> String {
    g.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string()
}

async fn browser_session(w: &World, who: &str) -> String {
    let mut c = w.db.store.pool().acquire().await.unwrap();
    let i = gatehouse_broker::identity::identities::by_username(&mut c, who)
        .await
        .unwrap()
        .unwrap();
    drop(c);
    let mut tx = w.db.store.begin().await.unwrap();
    let (_, s) = web_sessions::create(
        &mut tx,
        SystemClock.now_ms(),
        NewSession {
            identity: &i,
            stage: Stage::Active,
            methods: "password+totp",
            mfa_at_ms: Some(SystemClock.now_ms()),
            address: "127.0.0.1",
            user_agent: "test",
        },
        Timeouts::default(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    s.id
}

/// What the web UI's /apps/authorize does for `who`'s browser session: a code for `app`.
async fn authorize(w: &World, who: &str, web_session: &str, app: &str, state: &str) -> String {
    let mut c = w.db.store.pool().acquire().await.unwrap();
    let i = gatehouse_broker::identity::identities::by_username(&mut c, who)
        .await
        .unwrap()
        .unwrap();
    let t = gatehouse_broker::access::targets::by_name(&mut c, app)
        .await
        .unwrap()
        .unwrap();
    drop(c);
    let mut tx = w.db.store.begin().await.unwrap();
    let code = apps::issue_code(
        &mut tx,
        SystemClock.now_ms(),
        &i,
        web_session,
        &t,
        state,
        "/start?x=1",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    code.expose().to_string()
}

/// Signs `who` in to `app` the way a browser does; returns the app cookie.
async fn sign_in(w: &World, who: &str, app: &str) -> String {
    sign_in_at(w, who, app, &format!("{app}.apps.test:8443")).await
}

/// The same at the app's `host` (`HOST:PORT`).
async fn sign_in_at(w: &World, who: &str, app: &str, host: &str) -> String {
    let host = host.to_string();
    let first = get(w, &host, "/start?x=1", &[]).await;
    assert_eq!(first.status, 303, "{}", first.body);
    let to = first.headers["location"].to_str().unwrap().to_string();
    assert!(
        to.starts_with(&format!(
            "https://gatehouse.test/apps/authorize?app={app}&state="
        )),
        "{to}"
    );
    let state = set_cookie(&first, "__Host-gh_app_state");
    let web = browser_session(w, who).await;
    let code = authorize(w, who, &web, app, &state).await;
    let cb = get(
        w,
        &host,
        &format!("/.gatehouse/callback?code={code}"),
        &[("cookie", &format!("__Host-gh_app_state={state}"))],
    )
    .await;
    assert_eq!(cb.status, 303, "{}", cb.body);
    assert_eq!(cb.headers["location"], "/start?x=1");
    // Replayed: refused.
    let again = get(
        w,
        &host,
        &format!("/.gatehouse/callback?code={code}"),
        &[("cookie", &format!("__Host-gh_app_state={state}"))],
    )
    .await;
    assert_eq!(again.status, 403);
    let cookie = set_cookie(&cb, "__Host-gh_app");
    assert!(cb.headers.get_all("set-cookie").iter().any(|v| {
        v.to_str()
            .unwrap()
            .contains("Secure; HttpOnly; SameSite=Lax")
    }));
    cookie
}

#[tokio::test]
async fn security_the_app_sees_gatehouses_identity_never_the_clients() {
    let w = world().await;
    let cookie = sign_in(&w, "alice", "echo").await;
    let got = get(
        &w,
        "echo.apps.test:8443",
        "/hello?q=1",
        &[
            ("cookie", &format!("theme=dark; __Host-gh_app={cookie}")),
            ("x-gatehouse-user", "admin"),
            ("x_gatehouse_user", "admin"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-host", "admin.internal"),
        ],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let seen: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    let h = &seen["headers"];
    assert_eq!(seen["path"], "/hello?q=1");
    assert_eq!(h["x-gatehouse-user"], serde_json::json!(["alice"]));
    assert_eq!(
        h["x-gatehouse-email"],
        serde_json::json!(["alice@example.com"])
    );
    assert_eq!(h["x-gatehouse-groups"], serde_json::json!(["eng"]));
    assert_eq!(h["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(
        h["x-forwarded-host"],
        serde_json::json!(["echo.apps.test:8443"])
    );
    assert_eq!(h["cookie"], serde_json::json!(["theme=dark"]));
    assert!(h.get("x_gatehouse_user").is_none(), "{h}");
    // The assertion verifies with the published key, for this app and this person.
    let jwt = h["x-gatehouse-assertion"][0].as_str().unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwk = &apps::jwks(&w.key.public())["keys"][0];
    let x = b64.decode(jwk["x"].as_str().unwrap()).unwrap();
    assert_eq!(x, w.key.public().bytes());
    assert!(w.key.public().verify(
        format!("{}.{}", parts[0], parts[1]).as_bytes(),
        &b64.decode(parts[2]).unwrap()
    ));
    let claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "echo");
    assert_eq!(claims["iss"], "https://gatehouse.test");
    assert_eq!(claims["roles"], serde_json::json!(["echo-users"]));
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 300);
    // A redirect to the app's internal address comes back as its public one.
    let moved = get_signed_in(&w, "echo.apps.test:8443", "/go-home", &cookie).await;
    assert_eq!(moved.status, 302);
    assert_eq!(
        moved.headers["location"],
        "https://echo.apps.test:8443/home"
    );
}

#[tokio::test]
async fn security_an_app_cookie_works_only_on_its_own_app_host() {
    let w = world().await;
    let cookie = sign_in(&w, "alice", "echo").await;
    let other = get_signed_in(&w, "other.apps.test:8443", "/", &cookie).await;
    assert_eq!(other.status, 303, "sent to sign in, not let in");
    // An API client without a session gets 401, an unknown host a 404 naming nothing.
    let api = get(
        &w,
        "other.apps.test:8443",
        "/api",
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(api.status, 401);
    let unknown = get(&w, "nope.apps.test:8443", "/", &[]).await;
    assert_eq!(
        (unknown.status, unknown.body.as_str()),
        (404, "not found\n")
    );
    let outside = get(&w, "echo.evil.example", "/", &[]).await;
    assert_eq!(outside.status, 404);
}

#[tokio::test]
async fn without_access_the_page_says_so_and_offers_a_request() {
    let w = world().await;
    let cookie = sign_in(&w, "bob", "echo").await;
    let got = get_signed_in(&w, "echo.apps.test:8443", "/", &cookie).await;
    assert_eq!(got.status, 403);
    assert!(
        got.body.contains("No access to this app now"),
        "{}",
        got.body
    );
    assert!(
        got.body
            .contains("href=\"https://gatehouse.test/requests/new?target=echo\""),
        "{}",
        got.body
    );
    let mut c = w.db.store.pool().acquire().await.unwrap();
    let denied = gatehouse_broker::ledger::audit::recent(&mut c, 50)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "authorize" && e.outcome == "deny")
        .count();
    assert_eq!(denied, 1);
}

#[tokio::test]
async fn access_ending_refuses_the_next_request() {
    let w = world().await;
    let cookie = sign_in(&w, "alice", "echo").await;
    let ok = get_signed_in(&w, "echo.apps.test:8443", "/", &cookie).await;
    assert_eq!(ok.status, 200);
    revoke_alice(&w).await;
    let after = get_signed_in(&w, "echo.apps.test:8443", "/", &cookie).await;
    assert_eq!(after.status, 403);
}

/// Ends every web UI session of `who` (a sign-out everywhere).
async fn sign_out_everywhere(w: &World, who: &str) {
    let mut c = w.db.store.pool().acquire().await.unwrap();
    let i = gatehouse_broker::identity::identities::by_username(&mut c, who)
        .await
        .unwrap()
        .unwrap();
    drop(c);
    let mut tx = w.db.store.begin().await.unwrap();
    web_sessions::end_all(&mut tx, SystemClock.now_ms(), &i.id, who, None, "sign_out")
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// The gateway keeps what it reads per request between requests (`http/cache.rs`); a sign-out
/// at the web UI must still be seen by the very next request, not a second later.
#[tokio::test]
async fn security_a_sign_out_at_the_web_ui_ends_the_app_session_at_the_next_request() {
    let w = world().await;
    let cookie = sign_in(&w, "alice", "echo").await;
    for _ in 0..3 {
        let ok = get_signed_in(&w, "echo.apps.test:8443", "/", &cookie).await;
        assert_eq!(ok.status, 200);
    }
    sign_out_everywhere(&w, "alice").await;
    // Signed out: sent to sign in again.
    let after = get_signed_in(&w, "echo.apps.test:8443", "/", &cookie).await;
    assert_eq!(after.status, 303, "{}", after.body);
    let to = after.headers["location"].to_str().unwrap();
    assert!(to.contains("/apps/authorize?"), "{to}");
}

#[tokio::test]
async fn security_ambiguous_request_framing_is_refused_with_400() {
    let w = world().await;
    // Reads everything the gateway answers until it closes the connection.
    async fn answers(w: &World, raw: &[u8]) -> String {
        let mut s = tokio::net::TcpStream::connect(w.gateway).await.unwrap();
        s.write_all(raw).await.unwrap();
        let mut all = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut all))
            .await
            .expect("the gateway closes the connection")
            .unwrap();
        String::from_utf8_lossy(&all).into_owned()
    }
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: echo.apps.test\r\n\r\n";
    for head in [
        // Two different lengths (hyper's own refusal), two equal ones, and a length with
        // chunked in either order: each is how request smuggling starts.
        "Content-Length: 4\r\nContent-Length: 5\r\n",
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
    ] {
        let raw =
            format!("POST / HTTP/1.1\r\nHost: echo.apps.test\r\n{head}\r\n0\r\n\r\n{smuggled}");
        let text = answers(&w, raw.as_bytes()).await;
        assert!(text.starts_with("HTTP/1.1 400"), "{head}: {text}");
        // One answer, then the connection closes: nothing behind it is read as a request.
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{head}: {text}");
    }
    // Later on a keep-alive connection, after a request with a body: the same.
    let raw = format!(
        "POST /first HTTP/1.1\r\nHost: echo.apps.test\r\nContent-Length: 5\r\n\r\nhello\
         POST / HTTP/1.1\r\nHost: echo.apps.test\r\nContent-Length: 4\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
    );
    let text = answers(&w, raw.as_bytes()).await;
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses.len(), 2, "{text}");
    assert_ne!(statuses[0], "400", "{text}");
    assert_eq!(statuses[1], "400", "{text}");
    // After a chunked request the framing check can no longer follow the connection: that
    // request is its last (answered with `Connection: close`), so nothing behind it goes
    // unchecked.
    let raw = format!(
        "POST /first HTTP/1.1\r\nHost: echo.apps.test\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\n\
         POST / HTTP/1.1\r\nHost: echo.apps.test\r\nContent-Length: 4\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
    );
    let text = answers(&w, raw.as_bytes()).await;
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    assert!(!text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
}

/// Removes alice's only assignment (her access to the apps).
async fn revoke_alice(w: &World) {
    let mut c = w.db.store.pool().acquire().await.unwrap();
    let i = gatehouse_broker::identity::identities::by_username(&mut c, "alice")
        .await
        .unwrap()
        .unwrap();
    let held = gatehouse_broker::access::assignments::of_identity(&mut c, &i.id)
        .await
        .unwrap();
    drop(c);
    let mut tx = w.db.store.begin().await.unwrap();
    gatehouse_broker::access::assignments::remove(
        &mut tx,
        &Actor::Cli,
        SystemClock.now_ms(),
        &held[0].id,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

mod recording;
mod upstream;

#[tokio::test]
async fn security_an_apps_own_identity_header_is_set_by_gatehouse_only() {
    let w = world().await;
    let cookie = sign_in(&w, "alice", "other").await;
    let got = get(
        &w,
        "other.apps.test:8443",
        "/",
        &[
            ("cookie", &format!("__Host-gh_app={cookie}")),
            ("x-webauth-user", "admin"),
            ("X_WEBAUTH_USER", "admin"),
        ],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let seen: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    let h = &seen["headers"];
    assert_eq!(h["x-webauth-user"], serde_json::json!(["alice"]), "{h}");
    assert!(h.get("x_webauth_user").is_none(), "{h}");
    assert!(h.get("x-gatehouse-user").is_none(), "{h}");
}

fn sealing_key() -> gatehouse_broker::sealing::SealingKey {
    gatehouse_broker::sealing::SealingKey::from_bytes([9; 32])
}

/// Credential injection: the secret vaulted for the app (any role) replaces the Authorization
/// header the browser sent; the audit record names its kind, never the secret.
#[tokio::test]
async fn security_a_vaulted_app_credential_replaces_the_clients_authorization() {
    let w = world().await;
    let mut c = w.db.store.pool().acquire().await.unwrap();
    let echo = gatehouse_broker::access::targets::by_name(&mut c, "echo")
        .await
        .unwrap()
        .unwrap();
    drop(c);
    let mut tx = w.db.store.begin().await.unwrap();
    apps::vault_credential(
        &mut tx,
        &Actor::Cli,
        SystemClock.now_ms(),
        &echo,
        "*",
        &apps::Injected::Basic {
            user: "admin".into(),
            password: "app-shared-s3cret".into(),
        },
        &sealing_key(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let cookie = sign_in(&w, "alice", "echo").await;
    let got = get(
        &w,
        "echo.apps.test:8443",
        "/",
        &[
            ("cookie", &format!("__Host-gh_app={cookie}")),
            ("authorization", "Basic Zm9yZ2VkOmZvcmdlZA=="),
        ],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let seen: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:app-shared-s3cret")
    );
    assert_eq!(
        seen["headers"]["authorization"],
        serde_json::json!([expected])
    );
    let mut c = w.db.store.pool().acquire().await.unwrap();
    let events = gatehouse_broker::ledger::audit::recent(&mut c, 200)
        .await
        .unwrap();
    let set = events
        .iter()
        .find(|e| e.action == "target.credential_set")
        .unwrap();
    assert!(set.details.contains("basic:admin"), "{}", set.details);
    assert!(
        !events
            .iter()
            .any(|e| e.details.contains("app-shared-s3cret"))
    );
}

/// A body larger than the gateway passes on, declared as such: 413, and nothing reaches the app.
#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused() {
    let w = world().await;
    let cookie = sign_in(&w, "alice", "echo").await;
    let s = tokio::net::TcpStream::connect(w.gateway).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let r = send
        .send_request(
            hyper::Request::post("/upload")
                .header("host", "echo.apps.test:8443")
                .header("cookie", format!("__Host-gh_app={cookie}"))
                .body(Full::new(Bytes::from(vec![b'x'; 4096])))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

/// One spelling of a path only; no TRACE; an app sets only host-only cookies of its own.
#[tokio::test]
async fn security_odd_paths_trace_and_app_cookies_for_other_hosts_are_refused() {
    let w = world().await;
    let cookie = sign_in(&w, "alice", "echo").await;
    let c = format!("__Host-gh_app={cookie}");
    for path in ["//admin", "/%61dmin", "/./admin", "/x/../admin", "/admin;x"] {
        let got = get(&w, "echo.apps.test:8443", path, &[("cookie", &c)]).await;
        assert_eq!(got.status, 400, "{path}");
    }
    let s = tokio::net::TcpStream::connect(w.gateway).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let r = send
        .send_request(
            hyper::Request::builder()
                .method("TRACE")
                .uri("/")
                .header("host", "echo.apps.test:8443")
                .header("cookie", &c)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let got = get(&w, "echo.apps.test:8443", "/cookie", &[("cookie", &c)]).await;
    assert_eq!(got.status, 200);
    let set: Vec<&str> = got
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(set, ["sid=1; Path=/; HttpOnly"]);
}

/// A long response (server-sent events) is cut off when its access ends, like a websocket.
#[tokio::test]
async fn a_long_response_ends_when_its_access_does() {
    let w = world().await;
    // An upstream that starts an event stream and never ends it.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                          transfer-encoding: chunked\r\n\r\n7\r\ndata: 1\r\n",
                    )
                    .await;
                tokio::time::sleep(std::time::Duration::from_secs(600)).await;
            });
        }
    });
    let mut c = w.db.store.pool().acquire().await.unwrap();
    let mut other = gatehouse_broker::access::targets::by_name(&mut c, "other")
        .await
        .unwrap()
        .unwrap();
    drop(c);
    other.address = format!("http://{addr}");
    let mut tx = w.db.store.begin().await.unwrap();
    gatehouse_broker::access::targets::update(
        &mut tx,
        &Actor::Cli,
        SystemClock.now_ms(),
        gatehouse_broker::access::targets::NewTarget {
            name: other.name.clone(),
            kind: other.kind,
            address: other.address.clone(),
            app: other.app.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let cookie = sign_in(&w, "alice", "other").await;
    let s = tokio::net::TcpStream::connect(w.gateway).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let r = send
        .send_request(
            hyper::Request::get("/events")
                .header("host", "other.apps.test:8443")
                .header("cookie", format!("__Host-gh_app={cookie}"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.data_ref().unwrap().as_ref(), b"data: 1");
    revoke_alice(&w).await;
    // The stream ends (a guard against hanging, not a measurement).
    let ended = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match body.frame().await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the event stream outlived the access");
}

/// HTTP/2 from clients (here with prior knowledge over TCP; browsers negotiate it by ALPN on the
/// TLS listener): the same sign-in cookie, the same decision, the app reached over HTTP/1.1.
#[tokio::test]
async fn http2_clients_are_served_too() {
    let w = world().await;
    let cookie = sign_in(&w, "alice", "echo").await;
    let s = tokio::net::TcpStream::connect(w.gateway).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(s),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for (path, status) in [("/h2", 200), ("//h2", 400)] {
        let req = hyper::Request::builder()
            .method("GET")
            .uri(format!("http://echo.apps.test:8443{path}"))
            .header("cookie", format!("__Host-gh_app={cookie}"))
            .header("x-gatehouse-user", "mallory")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = send.send_request(req).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        assert_eq!(r.version(), hyper::Version::HTTP_2);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        if status == 200 {
            assert!(body.contains(r#""x-gatehouse-user":["alice"]"#), "{body}");
            assert!(!body.contains("mallory"), "{body}");
        }
    }
}
