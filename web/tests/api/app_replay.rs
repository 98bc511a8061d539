//! The reviewer's replay page of an app session: the signed request log written as the gateway
//! writes it, read back as a table of requests filtered by GET parameters, with counts, the
//! signature check, the download, and the sessions search over request paths.

use super::{ADMIN_TOKEN, TestServer};
use gatehouse_broker::access::privileges::{self, Privilege};
use gatehouse_broker::access::sessions::{self, End, NewSession};
use gatehouse_broker::identity::identities::{self, NewIdentity};
use gatehouse_broker::identity::web_sessions::{self, Stage, Timeouts};
use gatehouse_broker::keys::SigningKeyPair;
use gatehouse_broker::secrets::Secret;
use gatehouse_broker::{Actor, Backend, Clock, SystemClock, bootstrap};
use gatehouse_recordings::manifest::{self, SessionInfo};
use gatehouse_recordings::requests::{self, Request, RequestWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// A server whose recordings are in `dir`, checked with `key`'s public half; rita a reviewer
/// signed in with a second factor (her cookie).
async fn server(backend: Backend, dir: &Path, key: &SigningKeyPair) -> (TestServer, String) {
    let dir = dir.to_path_buf();
    let public = key.public();
    let s = TestServer::start_configured(
        backend,
        Arc::new(SystemClock),
        move |web| {
            web.recordings_dir = dir;
            web.recording_key = Some(public);
        },
        gatehouse_web::router,
    )
    .await;
    bootstrap::on_start(&s.db.store, 1, Some(&Secret::new(ADMIN_TOKEN)))
        .await
        .unwrap();
    let now = SystemClock.now_ms();
    let mut tx = s.db.store.begin().await.unwrap();
    for who in ["rita", "alice"] {
        identities::create(&mut tx, &Actor::Cli, now, NewIdentity::named(who))
            .await
            .unwrap();
    }
    privileges::grant(&mut tx, &Actor::Cli, now, "rita", Privilege::Reviewer)
        .await
        .unwrap();
    let rita = identities::by_username(&mut tx, "rita")
        .await
        .unwrap()
        .unwrap();
    let (cookie, _) = web_sessions::create(
        &mut tx,
        now,
        web_sessions::NewSession {
            identity: &rita,
            stage: Stage::Active,
            methods: "password+totp",
            mfa_at_ms: Some(now),
            address: "127.0.0.1",
            user_agent: "test",
        },
        Timeouts::default(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (s, format!("gh_session={}", cookie.expose()))
}

fn request(method: &str, path: &str, status: u16) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        status,
        bytes_in: 17,
        bytes_out: 3451,
        duration_ms: 2,
    }
}

/// alice's ended app session on grafana: three requests, a websocket, ended by `logout`, its log
/// signed; returns the row id and the log's path.
async fn app_session(s: &TestServer, dir: &Path, key: &SigningKeyPair) -> (String, PathBuf) {
    let now = SystemClock.now_ms();
    let id = gatehouse_broker::ids::new_id();
    let alice = identities::by_username(&mut s.db.store.pool().acquire().await.unwrap(), "alice")
        .await
        .unwrap()
        .unwrap();
    let rel = requests::relative_path(now, &id);
    let path = dir.join(&rel);
    let header = requests::Header {
        format: requests::FORMAT.into(),
        session: id.clone(),
        identity: "alice".into(),
        app: "grafana".into(),
        timestamp: now / 1000,
    };
    let mut w = RequestWriter::create(&path, &header).await.unwrap();
    let at = Instant::now();
    w.request(at, &request("GET", "/d/home?token=abc&q=1", 200))
        .await
        .unwrap();
    w.request(at, &request("POST", "/api/dashboards/db", 403))
        .await
        .unwrap();
    w.request(at, &request("GET", "/admin/users", 500))
        .await
        .unwrap();
    w.ws_open(at, "/api/live/ws").await.unwrap();
    w.ws_close(&gatehouse_recordings::requests::WsClose {
        path: "/api/live/ws",
        bytes_in: 612,
        bytes_out: 20480,
        messages_in: 3,
        messages_out: 40,
        duration_ms: 51,
        reason: None,
    })
    .await
    .unwrap();
    let summary = w.finish("logout").await.unwrap();
    let info = SessionInfo {
        id: id.clone(),
        identity: "alice".into(),
        target: "grafana".into(),
        login: String::new(),
        grant: "request:r1".into(),
        kind: "app".into(),
        source: "127.0.0.1:5555".into(),
        started_at: gatehouse_broker::clock::format_ms(now),
        ended_at: gatehouse_broker::clock::format_ms(now),
    };
    manifest::write(&summary, info, "logout", &key.public().to_string(), |m| {
        key.sign(m)
    })
    .unwrap();
    let mut tx = s.db.store.begin().await.unwrap();
    let row = NewSession {
        id: id.clone(),
        identity_id: alice.id.clone(),
        identity: "alice".into(),
        target: "grafana".into(),
        login: String::new(),
        protocol: "http".into(),
        kind: "app".into(),
        grant_kind: "request".into(),
        grant_id: "r1".into(),
        source: "127.0.0.1:5555".into(),
    };
    sessions::start(&mut tx, now, &row).await.unwrap();
    let end = End {
        reason: "logout".into(),
        bytes_up: 51,
        bytes_down: 10353,
        recording: Some(rel.display().to_string()),
        requests: Some(3),
        ..Default::default()
    };
    sessions::end(&mut tx, now, &id, &end).await.unwrap();
    tx.commit().await.unwrap();
    (id, path)
}

async fn get(s: &TestServer, cookie: &str, path: &str) -> reqwest::Response {
    let r = s
        .http
        .get(s.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r
}

async fn page(s: &TestServer, cookie: &str, path: &str) -> String {
    get(s, cookie, path).await.text().await.unwrap()
}

/// The request rows of a replay page: the text of each `<code>` in a `tr class="request"`.
fn request_paths(html: &str) -> Vec<String> {
    html.split("<tr class=\"request\">")
        .skip(1)
        .map(|row| {
            row.split("<code>")
                .nth(1)
                .and_then(|c| c.split("</code>").next())
                .unwrap()
                .replace("&#38;", "&")
        })
        .collect()
}

#[tokio::test]
async fn an_app_sessions_replay_page_lists_and_filters_its_requests_on_sqlite() {
    replay_page(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_app_sessions_replay_page_lists_and_filters_its_requests_on_postgres() {
    replay_page(Backend::Postgres).await;
}

async fn replay_page(backend: Backend) {
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-app-replay-{}",
        gatehouse_broker::ids::new_id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, _) = SigningKeyPair::load_or_create(&dir.join("signing.pem")).unwrap();
    let (s, rita) = server(backend, &dir, &key).await;
    let (id, log) = app_session(&s, &dir, &key).await;
    let replay = format!("/sessions/{id}");

    // Everything: three requests (the token masked), the websocket, the end reason, verified.
    let html = page(&s, &rita, &replay).await;
    assert_eq!(
        request_paths(&html),
        [
            "/d/home?token=***&q=1",
            "/api/dashboards/db",
            "/admin/users"
        ],
        "{html}"
    );
    assert!(html.contains("3 of 3 requests"), "{html}");
    assert!(html.contains("websocket open"), "{html}");
    assert!(html.contains("websocket close"), "{html}");
    assert!(html.contains("3 / 40 messages"), "{html}");
    assert!(
        html.contains("The log ends: <strong>logout</strong>"),
        "{html}"
    );
    assert!(
        html.contains("Recording signature: <strong>verified</strong>"),
        "{html}"
    );
    assert!(!html.contains("abc"), "the masked value never shows");
    assert!(!html.contains("id=\"player\""), "no terminal player");
    assert!(!html.contains("<script>"), "no inline script");

    // Filters as GET parameters on the same page.
    for (query, want, count) in [
        (
            "status=4xx",
            &["/api/dashboards/db", "/admin/users"][..],
            "2 of 3 requests",
        ),
        (
            "method=post",
            &["/api/dashboards/db"][..],
            "1 of 3 requests",
        ),
        ("path=ADMIN", &["/admin/users"][..], "1 of 3 requests"),
        (
            "status=4xx&method=GET&path=%2Fadmin",
            &["/admin/users"][..],
            "1 of 3 requests",
        ),
    ] {
        let html = page(&s, &rita, &format!("{replay}?{query}")).await;
        assert_eq!(request_paths(&html), want, "{query}: {html}");
        assert!(html.contains(count), "{query}: {html}");
        assert!(!html.contains("websocket open"), "{query}");
    }
    // The path filter keeps websocket rows that match.
    let html = page(&s, &rita, &format!("{replay}?path=live")).await;
    assert!(request_paths(&html).is_empty());
    assert!(html.contains("websocket open"), "{html}");
    // A filter matching nothing: an empty-state sentence, no table.
    let html = page(&s, &rita, &format!("{replay}?path=nothing-like-this")).await;
    assert!(html.contains("0 of 3 requests"), "{html}");
    assert!(
        html.contains("id=\"no-requests\">No request matches these filters."),
        "{html}"
    );
    assert!(!html.contains("id=\"requests\""), "{html}");
    // Something that is not a filter value is escaped, never markup.
    let html = page(&s, &rita, &format!("{replay}?path=%3Cb%3Ex")).await;
    assert!(!html.contains("<b>x"), "{html}");
    assert!(html.contains("0 of 3 requests"), "{html}");

    // The list shows the app as the target (no empty login before it); search finds paths.
    let html = page(&s, &rita, "/sessions").await;
    assert!(html.contains("<td>grafana</td>"), "{html}");
    assert!(!html.contains("@grafana"), "{html}");
    let html = page(&s, &rita, "/sessions?q=dashboards%2Fdb").await;
    assert!(html.contains(&format!("data-id=\"{id}\"")), "{html}");
    assert!(html.contains("POST /api/dashboards/db 403"), "{html}");
    let html = page(&s, &rita, "/sessions?q=nothing-like-this").await;
    assert!(html.contains("id=\"no-sessions\""), "{html}");

    // Downloads: the log as JSON lines under its own name, and the manifest.
    let r = get(&s, &rita, &format!("{replay}/cast?download=1")).await;
    assert_eq!(
        r.headers()["content-type"],
        "application/jsonl; charset=utf-8"
    );
    assert_eq!(
        r.headers()["content-disposition"],
        format!("attachment; filename=\"{id}.requests.jsonl\"").as_str()
    );
    let body = r.text().await.unwrap();
    assert_eq!(body, std::fs::read_to_string(&log).unwrap());
    let r = get(&s, &rita, &format!("{replay}/manifest.json")).await;
    let m: serde_json::Value = r.json().await.unwrap();
    assert_eq!(m["cast"]["file"], format!("{id}.requests.jsonl"));

    // One changed byte and a line that is no JSON: not verified, the line skipped and counted.
    std::fs::write(&log, body.replacen("POST", "PUT ", 1) + "not json\n").unwrap();
    let html = page(&s, &rita, &replay).await;
    assert!(html.contains("NOT verified"), "{html}");
    assert!(
        html.contains("1 line of the log could not be read"),
        "{html}"
    );
    assert_eq!(request_paths(&html).len(), 3, "{html}");

    let _ = std::fs::remove_dir_all(&dir);
}
