//! The security reviewer in chromium: a real interactive ssh session through the gateway is
//! found by full-text search, replayed with its signature verified and its command timeline
//! seeking the player; a live session is watched and terminated from the page, and the ssh
//! client is cut; a non-reviewer gets 403 on the live websocket and the recording download.

use super::*;
use crate::ui::Browser;
use std::io::Write;

const PASSWORD: &str = "correct horse battery staple";

async fn set_password(lab: &Lab, who: &str) {
    let (st, v) = lab
        .api(
            reqwest::Method::POST,
            &format!("/api/v1/identities/{who}/password"),
            TOKEN,
            Some(serde_json::json!({ "password": PASSWORD })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
}

/// A websocket handshake on the live view with a browser's cookies, from a page of `origin`:
/// its HTTP status.
async fn live_handshake_from(origin: &str, base: &str, id: &str, cookies: &str) -> u16 {
    crate::harness::http_builder(&[])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/sessions/{id}/live"))
        .header("cookie", cookies)
        .header("origin", origin)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", "v2.asciicast")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The same handshake from one of our own pages.
async fn live_handshake(base: &str, id: &str, cookies: &str) -> u16 {
    live_handshake_from(base, base, id, cookies).await
}

async fn cookie_header(b: &Browser) -> String {
    b.c.get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn browser_reviewer_replays_searches_watches_live_and_terminates() {
    let lab = Lab::start().await;
    set_password(&lab, "alice").await;
    set_password(&lab, "bob").await;
    let (st, v) = lab
        .api(
            reqwest::Method::POST,
            "/api/v1/identities/bob/privileges",
            TOKEN,
            Some(serde_json::json!({ "privilege": "reviewer" })),
        )
        .await;
    assert_eq!(st, 200, "{v}");

    // alice works in a shell: two commands, a second and a half apart.
    let mut child = lab
        .ssh("alice", "root@db-01")
        .arg("-tt")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        stdin.write_all(b"echo first-$((20+1))\n").unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        stdin.write_all(b"echo second-$((40+2))\n").unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        stdin.write_all(b"exit\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(text(&out.stdout).contains("second-42"));
    let shell = lab.ended_sessions().await;
    let shell_id = shell[0]["id"].as_str().unwrap().to_string();

    // The browser reaches the server as http://localhost:PORT (plain HTTP is for loopback).
    let base = lab.server.base.replace("127.0.0.1", "localhost");
    let b = Browser::start(&base).await;
    // A reviewer holds a privilege: signing in takes a second factor.
    let bob_totp = crate::ui::enroll_totp(&lab.path("data"), "bob");
    b.sign_in("bob", PASSWORD, Some(&bob_totp)).await;

    // Full-text search over what was shown: the shell session, with the line that matched.
    b.goto("/sessions?q=second-42").await;
    let hit = b.text("tr.hit").await;
    assert!(hit.contains("second-42"), "{hit}");
    b.shot("sessions-search").await;
    b.goto("/sessions?q=nothing-like-this").await;
    b.text("#no-sessions").await;

    // The replay page: signature verified, the timeline lists the commands, clicking one seeks.
    b.goto(&format!("/sessions/{shell_id}")).await;
    assert!(b.text("#signature").await.contains("verified"));
    assert!(!b.text("#signature").await.contains("NOT"));
    let timeline = b.text("#timeline").await;
    assert!(timeline.contains("echo first-$((20+1))"), "{timeline}");
    assert!(timeline.contains("echo second-$((40+2))"), "{timeline}");
    let entries =
        b.c.find_all(fantoccini::Locator::Css("#timeline a.typed"))
            .await
            .unwrap();
    let second = &entries[1];
    let at: f64 = second
        .attr("data-seek")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert!(at > 1.0, "the second command comes later: {at}");
    second.click().await.unwrap();
    let mut now = 0.0;
    for _ in 0..50 {
        now =
            b.c.execute(
                "return window.gatehousePlayer ? window.gatehousePlayer.getCurrentTime() : -1",
                vec![],
            )
            .await
            .unwrap()
            .as_f64()
            .unwrap_or(-1.0);
        if (now - at).abs() < 0.5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        (now - at).abs() < 0.5,
        "the player is at {now}, the command at {at}"
    );
    b.shot("replay").await;

    // A live session: watched, then terminated from the page.
    let mut child = long_session(&lab, "alice");
    wait_started(&mut child);
    let live = lab
        .sessions()
        .await
        .into_iter()
        .find(|s| s["ended_at_ms"].is_null())
        .unwrap();
    let live_id = live["id"].as_str().unwrap().to_string();
    b.goto("/sessions?state=live").await;
    b.click("tr.session a.open").await;
    b.text("#terminate").await;
    // The player streams the live recording over the websocket: alice's output shows.
    let mut seen = String::new();
    for _ in 0..50 {
        seen = b.text("#player").await;
        if seen.contains("started") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.contains("started"), "live view shows: {seen:?}");
    b.shot("live").await;
    let bob_cookies = cookie_header(&b).await;
    assert_eq!(live_handshake(&base, &live_id, &bob_cookies).await, 101);
    // security: another site's page, riding on the reviewer's cookies, may not watch.
    assert_eq!(
        live_handshake_from("https://evil.example", &base, &live_id, &bob_cookies).await,
        403
    );
    let t = Instant::now();
    b.click("#terminate").await;
    let (out, _) = ends_within(child, Duration::from_secs(5));
    // The click returns once the page after the POST has loaded; the client is gone by then.
    println!(
        "terminated: the ssh client had exited {:?} after the click",
        t.elapsed()
    );
    assert!(
        text(&out.stderr).contains("a security reviewer ended this session"),
        "{}",
        text(&out.stderr)
    );
    let ended = lab.ended_sessions().await;
    let s = ended.iter().find(|s| s["id"] == live_id.as_str()).unwrap();
    assert_eq!(s["end_reason"], "terminated");
    assert_eq!(lab.audit("session.terminate").await.len(), 1);
    b.sign_out().await;

    // alice is no reviewer: 403 on the recording download, the list and the live websocket.
    b.sign_in("alice", PASSWORD, None).await;
    b.goto(&format!("/sessions/{shell_id}/cast?download=1"))
        .await;
    assert!(b.text("#error-message").await.contains("not allowed"));
    b.goto("/sessions").await;
    b.text("#error-message").await;
    let alice_cookies = cookie_header(&b).await;
    assert_eq!(live_handshake(&base, &live_id, &alice_cookies).await, 403);
    assert_eq!(
        live_handshake(&base, &live_id, "").await,
        303,
        "no session: sent to sign in"
    );
    b.close().await;
}
