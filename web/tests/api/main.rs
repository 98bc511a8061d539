//! The web control plane, served in-process on a loopback port over a real database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::routing::get;
use gatehouse_broker::secrets::Secret;
use gatehouse_broker::testkit::TestDb;
use gatehouse_broker::{Backend, SharedClock, SystemClock, bootstrap};
use gatehouse_web::access::{RULES, Requirement};
use gatehouse_web::{AppState, WebConfig, router};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

mod app_replay;
mod approval_form;
mod approvals;
mod apps;
mod workflow;

const ADMIN_TOKEN: &str = "test-bootstrap-token-0123456789";

/// A server on 127.0.0.1:0 over a fresh database; stops when dropped.
struct TestServer {
    base: String,
    db: TestDb,
    stop: CancellationToken,
    http: reqwest::Client,
}

impl TestServer {
    async fn start(backend: Backend) -> Self {
        Self::start_with(backend, router).await
    }

    async fn start_with(backend: Backend, app: impl FnOnce(AppState) -> Router) -> Self {
        Self::start_full(backend, Arc::new(SystemClock), app).await
    }

    async fn start_full(
        backend: Backend,
        clock: SharedClock,
        app: impl FnOnce(AppState) -> Router,
    ) -> Self {
        Self::start_configured(backend, clock, |_| {}, app).await
    }

    /// [`Self::start_full`] with the web settings changed by `configure` first.
    async fn start_configured(
        backend: Backend,
        clock: SharedClock,
        configure: impl FnOnce(&mut WebConfig),
        app: impl FnOnce(AppState) -> Router,
    ) -> Self {
        let db = TestDb::new(backend).await;
        let mut web = WebConfig::new(
            url::Url::parse("http://localhost:8080").unwrap(),
            Arc::new(gatehouse_broker::sealing::SealingKey::from_bytes([7; 32])),
            std::env::temp_dir(),
        );
        configure(&mut web);
        let state = AppState {
            store: db.store.clone(),
            clock,
            cache: Default::default(),
            ssh_user_ca: None,
            web: Arc::new(web),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let app = app(state);
        let s = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
                .unwrap();
        });
        // With the workspace built together reqwest has rustls without a provider (the binary's
        // outbound TLS): give it the process-wide one.
        gatehouse_web::tls::install_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            base,
            db,
            stop,
            http,
        }
    }

    async fn with_admin(backend: Backend) -> Self {
        let s = Self::start(backend).await;
        bootstrap::on_start(&s.db.store, 1, Some(&Secret::new(ADMIN_TOKEN)))
            .await
            .unwrap();
        s
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[tokio::test]
async fn healthz_reports_the_database_on_sqlite() {
    healthz_ok(Backend::Sqlite).await;
}

#[tokio::test]
async fn healthz_reports_the_database_on_postgres() {
    healthz_ok(Backend::Postgres).await;
}

async fn healthz_ok(backend: Backend) {
    let s = TestServer::start(backend).await;
    let resp = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"]["reachable"], true);
    assert_eq!(body["database"]["backend"], backend.name());
}

#[tokio::test]
async fn healthz_is_503_when_the_database_is_gone() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.db.store.close().await;
    let resp = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["database"]["reachable"], false);
}

#[tokio::test]
async fn whoami_answers_for_a_valid_token() {
    let s = TestServer::with_admin(Backend::Sqlite).await;
    let resp = s
        .http
        .get(s.url("/api/v1/whoami"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["username"], "admin");
    assert_eq!(body["privileges"], serde_json::json!(["admin"]));
}

/// THREATS: "one API route missing its permission check" and "client-supplied identity header".
/// Every route that is not public refuses a request without a valid token, whatever identity
/// headers it carries.
#[tokio::test]
async fn security_every_protected_route_refuses_missing_or_spoofed_credentials() {
    let s = TestServer::with_admin(Backend::Sqlite).await;
    let protected: Vec<_> = RULES
        .iter()
        .filter(|(_, _, r, _)| *r != Requirement::Public)
        .collect();
    assert!(!protected.is_empty());
    for (method, path, _, _) in protected {
        let attempts = [
            s.http.request(method.clone(), s.url(path)),
            s.http
                .request(method.clone(), s.url(path))
                .bearer_auth("ght_not-a-real-token"),
            s.http
                .request(method.clone(), s.url(path))
                .header("Authorization", format!("Basic {ADMIN_TOKEN}")),
            s.http
                .request(method.clone(), s.url(path))
                .header("X-Remote-User", "admin")
                .header("X-Forwarded-User", "admin")
                .header("X-Gatehouse-User", "admin")
                .header("Remote-User", "admin"),
        ];
        for req in attempts {
            let resp = req.send().await.unwrap();
            if !path.starts_with("/api/") {
                // Pages: sent to sign in (GET), or refused (a form post without a session and
                // its CSRF token, or a bad bearer token) — never served.
                let st = resp.status().as_u16();
                assert!(matches!(st, 303 | 401 | 403), "{method} {path}: {st}");
                if st == 303 {
                    assert!(
                        resp.headers()["location"]
                            .to_str()
                            .unwrap()
                            .starts_with("/login")
                    );
                }
                continue;
            }
            assert_eq!(resp.status(), 401, "{method} {path}");
            assert!(resp.headers().contains_key("www-authenticate"));
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthenticated");
        }
    }
}

/// THREATS: a route added without an access rule must not be reachable (fail closed).
#[tokio::test]
async fn security_route_without_access_rule_is_refused() {
    let s = TestServer::start_with(Backend::Sqlite, |state| {
        Router::new()
            .route("/api/v1/forgotten", get(|| async { "secret" }))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                gatehouse_web::access::layer,
            ))
            .with_state(state)
    })
    .await;
    bootstrap::on_start(&s.db.store, 1, Some(&Secret::new(ADMIN_TOKEN)))
        .await
        .unwrap();
    let resp = s
        .http
        .get(s.url("/api/v1/forgotten"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_ne!(resp.text().await.unwrap(), "secret");
}

#[tokio::test]
async fn head_and_unknown_methods_get_their_own_answers() {
    let s = TestServer::start(Backend::Sqlite).await;
    let head = s.http.head(s.url("/healthz")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let delete = s.http.delete(s.url("/healthz")).send().await.unwrap();
    assert_eq!(delete.status(), 405);
    let head = s.http.head(s.url("/api/v1/whoami")).send().await.unwrap();
    assert_eq!(head.status(), 401, "HEAD needs what GET needs");
}

#[tokio::test]
async fn disabled_identity_token_stops_working() {
    let s = TestServer::with_admin(Backend::Sqlite).await;
    let mut tx = s.db.store.begin().await.unwrap();
    gatehouse_broker::identity::identities::set_status(
        &mut tx,
        &gatehouse_broker::Actor::Cli,
        2,
        "admin",
        gatehouse_broker::identity::identities::Status::Disabled,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let resp = s
        .http
        .get(s.url("/api/v1/whoami"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn setup_link_creates_the_admin_once() {
    let s = TestServer::start(Backend::Sqlite).await;
    let code = match bootstrap::on_start(&s.db.store, chrono_now(), None)
        .await
        .unwrap()
    {
        bootstrap::Outcome::SetupCode { code, .. } => code,
        other => panic!("{other:?}"),
    };
    let page = s
        .http
        .get(s.url(&format!("/setup?code={}", code.expose())))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()["referrer-policy"],
        "same-origin",
        "the code is in the URL"
    );
    assert!(page.text().await.unwrap().contains(code.expose()));

    let wrong = s
        .http
        .post(s.url("/setup"))
        .form(&[("code", "ghs_wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let ok = s
        .http
        .post(s.url("/setup"))
        .form(&[("code", code.expose())])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let html = ok.text().await.unwrap();
    let token = html
        .split("<pre>")
        .nth(1)
        .unwrap()
        .split("</pre>")
        .next()
        .unwrap()
        .to_string();
    assert!(token.starts_with("ght_"), "{html}");
    let me = s
        .http
        .get(s.url("/api/v1/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    let again = s
        .http
        .post(s.url("/setup"))
        .form(&[("code", code.expose())])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
}

#[tokio::test]
async fn setup_page_escapes_what_it_echoes() {
    let s = TestServer::start(Backend::Sqlite).await;
    let resp = s
        .http
        .get(s.url("/setup?code=%22%3E%3Cscript%3Ealert(1)%3C/script%3E"))
        .send()
        .await
        .unwrap();
    let html = resp.text().await.unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;"));
}

#[tokio::test]
async fn responses_carry_security_headers_and_json_errors() {
    let s = TestServer::start(Backend::Sqlite).await;
    let resp = s.http.get(s.url("/no/such/page")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let h = resp.headers();
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let s = TestServer::start(Backend::Sqlite).await;
    let big = "a".repeat(gatehouse_web::MAX_BODY + 1);
    let resp = s
        .http
        .post(s.url("/setup"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("code={big}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
