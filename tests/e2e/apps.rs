//! The app gateway's listener in the real binary: HTTPS with the certificate generated for
//! `*.apps.localhost`, routing by host (an unknown host is a 404 that names nothing), a browser
//! without an app session sent to the web UI's `/apps/authorize` with a state cookie on the app
//! host, the web UI asking it to sign in first, and the assertion key published as a JWKS.

use crate::harness::{Server, http, http_builder};
use std::net::SocketAddr;

/// An upstream that says which path it was asked for (it is never reached without a session).
async fn upstream() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nupstream")
                .await;
        }
    });
    addr
}

#[tokio::test]
async fn the_app_listener_routes_by_host_and_sends_browsers_to_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let up = upstream().await;
    let policy = dir.path().join("apps.toml");
    std::fs::write(
        &policy,
        format!("[[targets]]\nname = \"echo\"\nkind = \"http\"\naddress = \"http://{up}\"\n"),
    )
    .unwrap();
    let out = crate::harness::run(crate::harness::gatehouse(&data).arg("apply").arg(&policy));
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    let server = Server::start(&data, &[], &[]).await;
    let port = server.apps.port();
    let cert = data.join("keys/apps-cert.pem");
    let client = http_builder(&[&cert])
        .resolve("echo.apps.localhost", server.apps)
        .resolve("nope.apps.localhost", server.apps)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // An app host, in a browser, without a session: to the web UI, with a host-only state cookie.
    let r = client
        .get(format!("https://echo.apps.localhost:{port}/dash?x=1"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to.starts_with(&format!(
            "{}/apps/authorize?app=echo&state=",
            server.base.replace("127.0.0.1", "localhost")
        )),
        "{to}"
    );
    assert!(to.ends_with("&next=%2Fdash%3Fx%3D1"), "{to}");
    let state_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        state_cookie.starts_with("__Host-gh_app_state=")
            && state_cookie.contains("Secure; HttpOnly; SameSite=Lax"),
        "{state_cookie}"
    );
    // Not a browser: 401, nothing forwarded.
    let r = client
        .get(format!("https://echo.apps.localhost:{port}/api/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A host that is no app: 404, naming nothing.
    let r = client
        .get(format!("https://nope.apps.localhost:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), "not found\n");

    // The web UI asks the browser to sign in before it issues any code.
    let r = http_builder(&[])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(to.replace("localhost", "127.0.0.1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?next=%2Fapps%2Fauthorize"),
        "{:?}",
        r.headers()["location"]
    );

    // The assertion key, for apps to verify X-Gatehouse-Assertion.
    let jwks: serde_json::Value = http()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    server.stop();
}

/// `gatehouse recordings verify` on an app session's request log signed as the app gateway
/// signs it (the gateway tests drive the whole session; this checks the binary's check):
/// OK, then FAILED with exit code 1 after one changed byte.
#[tokio::test]
async fn recordings_verify_checks_an_app_request_log() {
    use gatehouse_recordings::requests::{self, RequestWriter};
    let dir = tempfile::tempdir().unwrap();
    let (key, _) =
        gatehouse_broker::keys::SigningKeyPair::load_or_create(&dir.path().join("k.pem")).unwrap();
    let log = dir.path().join(requests::relative_path(0, "a1"));
    let header = requests::Header {
        format: requests::FORMAT.into(),
        session: "a1".into(),
        identity: "alice".into(),
        app: "echo".into(),
        timestamp: 0,
    };
    let mut w = RequestWriter::create(&log, &header).await.unwrap();
    let r = requests::Request {
        method: "GET".into(),
        path: "/d?token=abc&q=1".into(),
        status: 200,
        bytes_in: 0,
        bytes_out: 8,
        duration_ms: 1,
    };
    w.request(std::time::Instant::now(), &r).await.unwrap();
    let summary = w.finish("logout").await.unwrap();
    let info = gatehouse_recordings::SessionInfo {
        id: "a1".into(),
        identity: "alice".into(),
        target: "echo".into(),
        login: String::new(),
        grant: "standing:x".into(),
        kind: "app".into(),
        source: "127.0.0.1:1".into(),
        started_at: "1970-01-01T00:00:00Z".into(),
        ended_at: "1970-01-01T00:00:01Z".into(),
    };
    let public = key.public().to_string();
    gatehouse_recordings::manifest::write(&summary, info, "logout", &public, |m| key.sign(m))
        .unwrap();
    let verify = || {
        crate::harness::run(
            crate::harness::gatehouse(&dir.path().join("data"))
                .args(["recordings", "verify", "--public-key", &public])
                .arg(&log),
        )
    };
    let out = verify();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && said.starts_with("OK: "), "{said}");
    assert!(said.contains("a1.requests.jsonl"), "{said}");
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.iter().position(|b| *b == b'G').unwrap();
    bytes[at] = b'P';
    std::fs::write(&log, &bytes).unwrap();
    let out = verify();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.starts_with("FAILED: "), "{said}");
}

/// `gatehouse demo` puts its web app behind the app gateway as `hello` and says where.
#[tokio::test]
async fn the_demo_serves_its_web_app_behind_the_app_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_command("demo", dir.path(), &[], &[]).await;
    let port = server.apps.port();
    let cert = dir.path().join("demo/keys/apps-cert.pem");
    let client = http_builder(&[&cert])
        .resolve("hello.apps.localhost", server.apps)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(format!("https://hello.apps.localhost:{port}/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "sent to sign in");
    let banner = server.log();
    assert!(
        banner.contains(&format!("https://hello.apps.localhost:{port}/")),
        "{banner}"
    );
    server.stop();
}
