//! The web UI's half of the app sign-in hand-off: `/apps/authorize` gives a one-time code to a
//! signed-in browser only, for an `http` target only, and `/.well-known/jwks.json` publishes the
//! assertion key.

use super::{ADMIN_TOKEN, TestServer};
use gatehouse_broker::access::apps::{self, Redeemed};
use gatehouse_broker::access::targets::{self, Kind, NewTarget};
use gatehouse_broker::identity::identities::{self, Identity, NewIdentity};
use gatehouse_broker::identity::web_sessions::{self, NewSession, Stage, Timeouts};
use gatehouse_broker::keys::PublicKey;
use gatehouse_broker::secrets::Secret;
use gatehouse_broker::{Actor, Backend, Clock, SystemClock, bootstrap, ledger::audit};
use gatehouse_web::AppsWeb;
use std::sync::Arc;

/// RFC 8032's first test key.
const KEY: &str = "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

/// The state an app host would keep in its state cookie.
const STATE: &str = "app-host-state-0123456789abcdef";

fn key() -> PublicKey {
    KEY.parse().unwrap()
}

fn now() -> i64 {
    SystemClock.now_ms()
}

/// A server with apps on (or off), alice, an `http` target grafana and an `ssh` target db-01.
async fn server(backend: Backend, apps_on: bool) -> TestServer {
    let s = TestServer::start_configured(
        backend,
        Arc::new(SystemClock),
        |web| {
            web.apps = apps_on.then(|| AppsWeb {
                domain: "apps.localhost".into(),
                port: 8443,
                assertion_key: key(),
            });
        },
        gatehouse_web::router,
    )
    .await;
    bootstrap::on_start(&s.db.store, 1, Some(&Secret::new(ADMIN_TOKEN)))
        .await
        .unwrap();
    let mut tx = s.db.store.begin().await.unwrap();
    identities::create(&mut tx, &Actor::Cli, now(), NewIdentity::named("alice"))
        .await
        .unwrap();
    for (name, kind, address) in [
        ("grafana", Kind::Http, "http://127.0.0.1:9"),
        ("db-01", Kind::Ssh, "10.0.0.5:22"),
    ] {
        targets::create(
            &mut tx,
            &Actor::Cli,
            now(),
            NewTarget {
                name: name.into(),
                kind,
                address: address.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    s
}

async fn identity(s: &TestServer, username: &str) -> Identity {
    let mut c = s.db.store.pool().acquire().await.unwrap();
    identities::by_username(&mut c, username)
        .await
        .unwrap()
        .unwrap()
}

/// A browser session of `username` at `stage`: its cookie header and session id.
async fn sign_in(s: &TestServer, username: &str, stage: Stage) -> (String, String) {
    let who = identity(s, username).await;
    let mut tx = s.db.store.begin().await.unwrap();
    let (cookie, session) = web_sessions::create(
        &mut tx,
        now(),
        NewSession {
            identity: &who,
            stage,
            methods: "password",
            mfa_at_ms: None,
            address: "127.0.0.1",
            user_agent: "test",
        },
        Timeouts::default(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (format!("gh_session={}", cookie.expose()), session.id)
}

fn authorize_path(app: &str, state: &str) -> String {
    format!("/apps/authorize?app={app}&state={state}&next=%2Fd%2Fhome%3Fx%3D1")
}

/// GET with the optional cookie and bearer token: (status, Location, body).
async fn get(
    s: &TestServer,
    path: &str,
    cookie: Option<&str>,
    bearer: Option<&str>,
) -> (u16, String, String) {
    let mut req = s.http.get(s.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, r.text().await.unwrap())
}

async fn codes_issued(s: &TestServer) -> usize {
    let mut c = s.db.store.pool().acquire().await.unwrap();
    audit::recent(&mut c, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == "app.authorize")
        .count()
}

#[tokio::test]
async fn security_app_authorize_issues_a_code_only_to_a_signed_in_browser_for_an_http_target() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        app_authorize(backend).await;
    }
}

async fn app_authorize(backend: Backend) {
    let s = server(backend, true).await;
    let path = authorize_path("grafana", STATE);

    // Not signed in, or only half (password without the second factor yet): to sign-in, and
    // back here after it.
    let (half_cookie, _) = sign_in(&s, "alice", Stage::SecondFactor).await;
    for cookie in [None, Some(half_cookie.as_str())] {
        let (st, loc, _) = get(&s, &path, cookie, None).await;
        assert_eq!(st, 303, "{backend:?}");
        let next = loc.strip_prefix("/login?next=").unwrap();
        let next: String = url::form_urlencoded::parse(format!("n={next}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        assert_eq!(next, path);
    }

    // A privileged identity signed in without a second factor goes to set one up first.
    let (admin_cookie, _) = sign_in(&s, "admin", Stage::Active).await;
    let (st, loc, _) = get(&s, &path, Some(&admin_cookie), None).await;
    assert_eq!((st, loc.as_str()), (303, "/account?setup=required"));

    // An API token (alone, or beside a browser's cookie: the token is the credential then)
    // never gets a code.
    let (alice_cookie, alice_session) = sign_in(&s, "alice", Stage::Active).await;
    for cookie in [None, Some(alice_cookie.as_str())] {
        let (st, loc, body) = get(&s, &path, cookie, Some(ADMIN_TOKEN)).await;
        assert_eq!(st, 401, "{backend:?}: {body}");
        assert!(loc.is_empty());
        assert!(body.contains("browser_required"), "{body}");
    }
    assert_eq!(codes_issued(&s).await, 0);

    // Not an app, or no such target: the same 404, naming nothing.
    let (st, _, ssh_body) = get(
        &s,
        &authorize_path("db-01", STATE),
        Some(&alice_cookie),
        None,
    )
    .await;
    assert_eq!(st, 404);
    let (st, _, unknown_body) = get(
        &s,
        &authorize_path("nope", STATE),
        Some(&alice_cookie),
        None,
    )
    .await;
    assert_eq!(st, 404);
    assert_eq!(ssh_body, unknown_body);
    assert!(!ssh_body.contains("db-01") && !ssh_body.contains("grafana"));
    let (st, _, _) = get(&s, "/apps/authorize?state=x", Some(&alice_cookie), None).await;
    assert_eq!(st, 404);

    // A missing or malformed state: 400.
    for bad in [
        "/apps/authorize?app=grafana".to_string(),
        authorize_path("grafana", "short"),
        authorize_path("grafana", &"s".repeat(300)),
    ] {
        let (st, loc, _) = get(&s, &bad, Some(&alice_cookie), None).await;
        assert_eq!((st, loc.as_str()), (400, ""), "{bad}");
    }
    assert_eq!(codes_issued(&s).await, 0);

    // A signed-in browser: back to the app host's callback with a code.
    let (st, loc, _) = get(&s, &path, Some(&alice_cookie), None).await;
    assert_eq!(st, 303, "{backend:?}");
    let to = url::Url::parse(&loc).unwrap();
    assert_eq!(
        (to.scheme(), to.host_str(), to.port(), to.path()),
        (
            "https",
            Some("grafana.apps.localhost"),
            Some(8443),
            "/.gatehouse/callback"
        )
    );
    let pairs: Vec<(String, String)> = to.query_pairs().into_owned().collect();
    assert_eq!(pairs.len(), 1, "{loc}");
    assert_eq!(pairs[0].0, "code");
    let code = pairs[0].1.clone();
    assert_eq!(codes_issued(&s).await, 1);

    // The app host redeems it for grafana with its state: alice's app session, tied to this
    // browser session, with the return path the app host asked for.
    let grafana = targets::by_name(&mut s.db.store.pool().acquire().await.unwrap(), "grafana")
        .await
        .unwrap()
        .unwrap();
    let mut tx = s.db.store.begin().await.unwrap();
    let r = apps::redeem_code(&mut tx, now(), &code, &grafana, STATE).await;
    tx.settle(&r).await.unwrap();
    match r.unwrap() {
        Redeemed::Session {
            session,
            identity,
            next,
            ..
        } => {
            assert_eq!(identity.username, "alice");
            assert_eq!(session.web_session_id, alice_session);
            assert_eq!(next, "/d/home?x=1");
        }
        Redeemed::Refused(why) => panic!("{backend:?}: refused: {why}"),
    }
}

#[tokio::test]
async fn jwks_publishes_the_assertion_key() {
    let s = server(Backend::Sqlite, true).await;
    let r = s
        .http
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    let doc: serde_json::Value = r.json().await.unwrap();
    let keys = doc["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(
        (k["kty"].as_str(), k["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert_eq!(k["alg"], "EdDSA");
    assert_eq!(k["kid"].as_str(), Some(apps::key_id(&key()).as_str()));
    use base64::Engine;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(k["x"].as_str().unwrap())
        .unwrap();
    assert_eq!(x, key().bytes());

    // Apps off: neither the key nor a code.
    let s = server(Backend::Sqlite, false).await;
    let r = s
        .http
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let (cookie, _) = sign_in(&s, "alice", Stage::Active).await;
    let (st, _, _) = get(&s, &authorize_path("grafana", STATE), Some(&cookie), None).await;
    assert_eq!(st, 404);
    assert_eq!(codes_issued(&s).await, 0);
}

/// My access lists the apps the person may open now, with their address on the app gateway;
/// an app without access is not listed.
#[tokio::test]
async fn my_access_lists_the_apps_one_may_open() {
    let s = server(Backend::Sqlite, true).await;
    let (cookie, _) = sign_in(&s, "alice", Stage::Active).await;
    let (st, _, html) = get(&s, "/", Some(&cookie), None).await;
    assert_eq!(st, 200);
    assert!(!html.contains("id=\"apps\""), "{html}");
    for (path, body) in [
        (
            "/api/v1/roles",
            serde_json::json!({ "name": "grafana-users", "targets": { "names": ["grafana"] },
                "protocols": ["http"] }),
        ),
        (
            "/api/v1/assignments",
            serde_json::json!({ "role": "grafana-users", "to": "alice", "kind": "standing" }),
        ),
    ] {
        let r = s
            .http
            .post(s.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{path}: {}", r.text().await.unwrap());
    }
    let (st, _, html) = get(&s, "/", Some(&cookie), None).await;
    assert_eq!(st, 200);
    assert!(
        html.contains(
            r#"<a href="https://grafana.apps.localhost:8443/" rel="noopener">grafana</a>"#
        ),
        "{html}"
    );
    assert!(!html.contains("data-app=\"db-01\""), "{html}");
}

/// A HEAD request (answered by the GET handler) issues no code: its answer would lose it.
#[tokio::test]
async fn a_head_request_issues_no_app_code() {
    let s = server(Backend::Sqlite, true).await;
    let (cookie, _) = sign_in(&s, "alice", Stage::Active).await;
    let r = s
        .http
        .head(s.url(&authorize_path("grafana", STATE)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(codes_issued(&s).await, 0);
}

/// The request form offers every role one may request: also one whose `requestable_by` names the
/// person (not only eligible assignments), such as an app's role.
#[tokio::test]
async fn the_request_form_offers_roles_requestable_by_the_person() {
    let s = server(Backend::Sqlite, true).await;
    let r = s
        .http
        .post(s.url("/api/v1/roles"))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &serde_json::json!({ "name": "grafana-requesters", "targets": { "names": ["grafana"] },
            "protocols": ["http"], "requestable_by": ["alice"] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (cookie, _) = sign_in(&s, "alice", Stage::Active).await;
    let (st, _, html) = get(&s, "/requests/new?target=grafana", Some(&cookie), None).await;
    assert_eq!(st, 200);
    assert!(html.contains(">grafana-requesters<"), "{html}");
}
