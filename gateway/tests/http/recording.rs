//! App sessions as sessions: the row, the signed request log, and their ends (logout, access
//! removed, Terminate, the gateway stopping, a websocket closed with its access).

use super::*;

#[tokio::test]
async fn an_open_websocket_ends_when_its_access_does() {
    let mut w = world().await;
    let cookie = sign_in(&w, "alice", "echo").await;
    let mut s = open_ws(&w, &cookie).await;
    let mut buf = vec![0u8; 1024];
    // Two text messages, each one masked frame of 6 bytes (12 on the wire); the app echoes them.
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | 6];
    frame.extend_from_slice(&mask);
    frame.extend(
        b"ping-1"
            .iter()
            .zip(mask.iter().cycle())
            .map(|(b, m)| b ^ m),
    );
    for _ in 0..2 {
        s.write_all(&frame).await.unwrap();
        let mut got = vec![0u8; frame.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, frame);
    }
    revoke_alice(&w).await;
    // The gateway closes it (a guard against hanging, not a measurement).
    let closed = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the websocket outlived the access");
    // The request log has the websocket's open and its close by the gateway, with its bytes
    // and messages each way.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let all = stop(&mut w).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0.end_reason.as_deref(), Some("access_removed"));
    let (_, lines) = read_log(&all[0].1);
    type Ws<'a> = (
        &'a str,
        Option<&'a str>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
    );
    let ws: Vec<Ws<'_>> = lines
        .iter()
        .filter(|l| l.event.starts_with("ws_"))
        .map(|l| {
            (
                l.event.as_str(),
                l.reason.as_deref(),
                l.bytes_in,
                l.messages_in,
                l.messages_out,
            )
        })
        .collect();
    assert_eq!(
        ws,
        [
            ("ws_open", None, None, None, None),
            (
                "ws_close",
                Some("access_removed"),
                Some(24),
                Some(2),
                Some(2)
            )
        ],
        "{lines:?}"
    );
}

/// Opens a websocket to echo's `/ws` with an app cookie; returns the stream after the 101.
async fn open_ws(w: &World, cookie: &str) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(w.gateway).await.unwrap();
    s.write_all(
        format!(
            "GET /ws HTTP/1.1\r\nHost: echo.apps.test:8443\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: __Host-gh_app={cookie}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("sec-websocket-accept"),
        "{head}"
    );
    s
}

#[tokio::test]
async fn a_sign_out_at_the_web_ui_closes_the_app_sessions_websockets() {
    let mut w = world().await;
    let cookie = sign_in(&w, "alice", "echo").await;
    let mut s = open_ws(&w, &cookie).await;
    sign_out_everywhere(&w, "alice").await;
    let mut buf = vec![0u8; 64];
    // A guard against hanging, not a measurement.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the websocket outlived the sign-out");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let all = stop(&mut w).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0.end_reason.as_deref(), Some("session_ended"));
}

/// The app sessions recorded, oldest first: (row, log path).
async fn app_sessions(
    w: &World,
) -> Vec<(
    gatehouse_broker::access::sessions::Session,
    std::path::PathBuf,
)> {
    let mut c = w.db.store.pool().acquire().await.unwrap();
    let mut all = gatehouse_broker::access::sessions::list(&mut c, &Default::default())
        .await
        .unwrap();
    all.reverse();
    all.into_iter()
        .map(|s| {
            let p = w
                .recordings
                .join(gatehouse_recordings::requests::relative_path(
                    s.started_at_ms,
                    &s.id,
                ));
            (s, p)
        })
        .collect()
}

/// Stops the gateway (it ends its recorded app sessions first, then returns); the app
/// sessions recorded, oldest first.
async fn stop(
    w: &mut World,
) -> Vec<(
    gatehouse_broker::access::sessions::Session,
    std::path::PathBuf,
)> {
    w.stop.cancel();
    if let Some(served) = w.served.take() {
        tokio::time::timeout(std::time::Duration::from_secs(20), served)
            .await
            .unwrap()
            .unwrap();
    }
    app_sessions(w).await
}

fn read_log(
    path: &std::path::Path,
) -> (
    gatehouse_recordings::requests::Header,
    Vec<gatehouse_recordings::requests::Line>,
) {
    gatehouse_recordings::requests::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A log line as compared: event, path, status, bytes out.
type Seen<'a> = (&'a str, Option<&'a str>, Option<u16>, Option<u64>);

fn verify(
    w: &World,
    path: &std::path::Path,
) -> Result<gatehouse_recordings::Verified, gatehouse_recordings::VerifyError> {
    let public = w.signer.public();
    gatehouse_recordings::manifest::verify(path, |m, s| public.verify(m, s))
}

#[tokio::test]
async fn an_app_session_is_a_session_row_with_a_signed_request_log() {
    let w = world().await;
    let cookie = sign_in(&w, "alice", "echo").await;
    let with = format!("__Host-gh_app={cookie}");
    let host = "echo.apps.test:8443";
    let mut bodies = Vec::new();
    for path in ["/", "/page?token=abc&q=1", "/go-home"] {
        let got = get(&w, host, path, &[("cookie", &with)]).await;
        bodies.push((got.status, got.body.len() as u64));
    }
    let posted = send(
        &w,
        "POST",
        host,
        "/up?password=pw",
        &[("cookie", &with)],
        "hello",
    )
    .await;
    bodies.push((posted.status, posted.body.len() as u64));
    assert_eq!(
        bodies.iter().map(|b| b.0).collect::<Vec<_>>(),
        [200, 200, 302, 200]
    );
    // One live row for the app session, however many requests.
    let live = app_sessions(&w).await;
    assert_eq!(live.len(), 1);
    let (row, log) = &live[0];
    assert_eq!(
        (row.protocol.as_str(), row.kind.as_str(), row.login.as_str()),
        ("http", "app", "")
    );
    assert_eq!(
        (row.identity.as_str(), row.target.as_str()),
        ("alice", "echo")
    );
    assert_eq!(row.grant_kind, "standing");
    assert!(row.source.starts_with("127.0.0.1:"), "{}", row.source);
    assert_eq!(row.ended_at_ms, None);

    let out = get(&w, host, "/.gatehouse/logout", &[("cookie", &with)]).await;
    assert_eq!(out.status, 200);
    let ended = app_sessions(&w).await;
    assert_eq!(ended.len(), 1);
    let (row, _) = &ended[0];
    assert!(row.ended_at_ms.is_some());
    assert_eq!(row.end_reason.as_deref(), Some("logout"));
    assert_eq!(row.bytes_up, 5);
    assert_eq!(
        row.bytes_down as u64,
        bodies.iter().map(|b| b.1).sum::<u64>()
    );
    assert_eq!(
        row.recording.as_deref(),
        Some(
            gatehouse_recordings::requests::relative_path(row.started_at_ms, &row.id)
                .to_str()
                .unwrap()
        )
    );

    // The log: each request, the secret-looking value masked, then the end.
    let text = std::fs::read_to_string(log).unwrap();
    assert!(!text.contains("abc") && !text.contains("=pw"), "{text}");
    let (header, lines) = read_log(log);
    assert_eq!(
        (header.session.as_str(), header.app.as_str()),
        (row.id.as_str(), "echo")
    );
    let seen: Vec<Seen> = lines
        .iter()
        .map(|l| (l.event.as_str(), l.path.as_deref(), l.status, l.bytes_out))
        .collect();
    assert_eq!(
        seen,
        [
            ("request", Some("/"), Some(200), Some(bodies[0].1)),
            (
                "request",
                Some("/page?token=***&q=1"),
                Some(200),
                Some(bodies[1].1)
            ),
            ("request", Some("/go-home"), Some(302), Some(bodies[2].1)),
            (
                "request",
                Some("/up?password=***"),
                Some(200),
                Some(bodies[3].1)
            ),
            ("end", None, None, None),
        ]
    );
    assert!(
        lines
            .iter()
            .take(3)
            .all(|l| l.method.as_deref() == Some("GET")
                && l.bytes_in == Some(0)
                && l.duration_ms.is_some())
    );
    assert_eq!(
        (lines[3].method.as_deref(), lines[3].bytes_in),
        (Some("POST"), Some(5))
    );
    assert_eq!(lines[4].reason.as_deref(), Some("logout"));

    // Signed like an SSH cast: verifies with the gateway's public key; one byte changed fails.
    let v = verify(&w, log).unwrap();
    assert_eq!(v.manifest.session.id, row.id);
    assert_eq!(v.manifest.session.kind, "app");
    assert_eq!(v.manifest.end_reason, "logout");
    let mut bytes = std::fs::read(log).unwrap();
    let at = text.find("/go-home").unwrap() + 1;
    bytes[at] = b'G';
    std::fs::write(log, &bytes).unwrap();
    assert!(matches!(
        verify(&w, log).unwrap_err(),
        gatehouse_recordings::VerifyError::CastChanged(_)
    ));

    // The audit's session.end carries the request count.
    let mut c = w.db.store.pool().acquire().await.unwrap();
    let end = gatehouse_broker::ledger::audit::recent(&mut c, 50)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.action == "session.end")
        .unwrap();
    let details: serde_json::Value = serde_json::from_str(&end.details).unwrap();
    assert_eq!(details["requests"], 4);
}

#[tokio::test]
async fn an_app_session_ends_with_its_access_and_on_terminate() {
    let w = world().await;
    let echo = format!("__Host-gh_app={}", sign_in(&w, "alice", "echo").await);
    let other = format!("__Host-gh_app={}", sign_in(&w, "alice", "other").await);
    let on = |app: &'static str| format!("{app}.apps.test:8443");
    assert_eq!(
        get(&w, &on("echo"), "/a", &[("cookie", &echo)])
            .await
            .status,
        200
    );
    assert_eq!(
        get(&w, &on("other"), "/b", &[("cookie", &other)])
            .await
            .status,
        200
    );
    assert_eq!(app_sessions(&w).await.len(), 2);

    // A reviewer's Terminate ends the row at once, and the app session with it.
    let rows = app_sessions(&w).await;
    let echo_row = rows
        .iter()
        .find(|(s, _)| s.target == "echo")
        .unwrap()
        .0
        .id
        .clone();
    let mut tx = w.db.store.begin().await.unwrap();
    gatehouse_broker::access::sessions::terminate(
        &mut tx,
        &Actor::Cli,
        SystemClock.now_ms(),
        &echo_row,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (row, log) = ended(&w, &echo_row).await;
    assert_eq!(row.end_reason.as_deref(), Some("terminated"));
    assert_eq!(verify(&w, &log).unwrap().manifest.end_reason, "terminated");
    let again = get(&w, &on("echo"), "/a", &[("cookie", &echo)]).await;
    assert_eq!(again.status, 303, "the app cookie no longer lets in");

    // Access removed: the other app's row ends with it, without waiting for a request; the
    // next request is denied and opens nothing.
    let other_row = rows
        .iter()
        .find(|(s, _)| s.target == "other")
        .unwrap()
        .0
        .id
        .clone();
    revoke_alice(&w).await;
    let (row, log) = ended(&w, &other_row).await;
    assert_eq!(row.end_reason.as_deref(), Some("access_removed"));
    verify(&w, &log).unwrap();
    let denied = get(&w, &on("other"), "/c?session=s", &[("cookie", &other)]).await;
    assert_eq!(denied.status, 403);
    assert_eq!(app_sessions(&w).await.len(), 2);
}

#[tokio::test]
async fn the_gateway_stopping_ends_its_app_sessions_with_signed_logs() {
    let mut w = world().await;
    let echo = format!("__Host-gh_app={}", sign_in(&w, "alice", "echo").await);
    let host = "echo.apps.test:8443";
    assert_eq!(get(&w, host, "/a", &[("cookie", &echo)]).await.status, 200);
    // The gateway stops: the row ends, its log signed.
    let all = stop(&mut w).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0.end_reason.as_deref(), Some("gateway_shutdown"));
    assert_eq!(
        verify(&w, &all[0].1).unwrap().manifest.end_reason,
        "gateway_shutdown"
    );
}

/// Waits (bounded) for session `id` to end; its row and log.
async fn ended(
    w: &World,
    id: &str,
) -> (
    gatehouse_broker::access::sessions::Session,
    std::path::PathBuf,
) {
    for _ in 0..200 {
        let all = app_sessions(w).await;
        if let Some(found) = all
            .into_iter()
            .find(|(s, _)| s.id == id && s.ended_at_ms.is_some())
        {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("session {id} did not end");
}

/// One identity opening many app sessions ends its own idlest, never other people's.
#[tokio::test]
async fn security_one_identity_past_its_recorded_sessions_ends_its_own_idlest() {
    let w = world().await;
    let cap = gatehouse_gateway::http::record::MAX_PER_IDENTITY;
    for _ in 0..=cap {
        let cookie = sign_in(&w, "alice", "echo").await;
        let ok = get_signed_in(&w, "echo.apps.test:8443", "/", &cookie).await;
        assert_eq!(ok.status, 200);
    }
    let all = app_sessions(&w).await;
    assert_eq!(all.len(), cap + 1);
    // The first (the idlest) was ended to make room; the rest are live.
    assert_eq!(all[0].0.end_reason.as_deref(), Some("evicted"));
    assert!(all[1..].iter().all(|(s, _)| s.ended_at_ms.is_none()));
}
