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
