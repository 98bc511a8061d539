//! The approver's page form (`/approvals/{id}/approve`, a browser session): a typed code is
//! checked only for a request its sender may decide, throttled like sign-in; every refusal is
//! audited; banners come from fixed codes, never from the URL.

use super::ADMIN_TOKEN;
use super::workflow::{World, call};
use gatehouse_broker::identity::identities::{self, Identity};
use gatehouse_broker::identity::web_sessions::{self, NewSession, Stage, Timeouts};
use gatehouse_broker::sealing::SealingKey;
use gatehouse_broker::{Actor, Backend, Clock, identity::mfa, ledger::audit};
use reqwest::Method;
use serde_json::{Value, json};

/// A signed-in browser: its session cookie and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn sign_in(w: &World, username: &str) -> Browser {
    let store = &w.s.db.store;
    let who: Identity =
        identities::by_username(&mut store.pool().acquire().await.unwrap(), username)
            .await
            .unwrap()
            .unwrap();
    let mut tx = store.begin().await.unwrap();
    let (cookie, session) = web_sessions::create(
        &mut tx,
        w.clock.now_ms(),
        NewSession {
            identity: &who,
            stage: Stage::Active,
            methods: "password+totp",
            mfa_at_ms: None,
            address: "127.0.0.1",
            user_agent: "test",
        },
        Timeouts::default(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    Browser {
        cookie: format!("gh_session={}", cookie.expose()),
        csrf: session.csrf,
    }
}

/// Posts a page form as our own page would; returns where it redirects.
async fn post(w: &World, b: &Browser, path: &str, fields: &[(&str, &str)]) -> String {
    let mut form: Vec<(&str, &str)> = vec![("csrf", b.csrf.as_str())];
    form.extend_from_slice(fields);
    let r =
        w.s.http
            .post(w.s.url(path))
            .header("cookie", &b.cookie)
            .header("sec-fetch-site", "same-origin")
            .form(&form)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 303, "{path}: {}", r.text().await.unwrap());
    r.headers()["location"].to_str().unwrap().to_string()
}

async fn page(w: &World, b: &Browser, path: &str) -> String {
    let r =
        w.s.http
            .get(w.s.url(path))
            .header("cookie", &b.cookie)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

/// The audit events of one action, oldest first: (actor, object, details).
async fn events(w: &World, action: &str) -> Vec<(String, String, Value)> {
    let mut c = w.s.db.store.pool().acquire().await.unwrap();
    let mut all = audit::recent(&mut c, 1000).await.unwrap();
    all.reverse();
    all.into_iter()
        .filter(|e| e.action == action)
        .map(|e| (e.actor, e.object, serde_json::from_str(&e.details).unwrap()))
        .collect()
}

/// A role whose approvals need a fresh second factor, alice's pending request for it, and bob
/// (an approver) with a TOTP seed; returns the request id and bob's seed.
async fn mfa_request(w: &World) -> (String, String) {
    for (path, body) in [
        (
            "/api/v1/roles",
            json!({
            "name": "db-admin", "targets": { "names": ["db-01"] }, "logins": ["dba"],
            "requestable_by": ["group:engineering"],
            "approvals": [{ "from": "group:db-owners", "count": 1 }],
            "approval_requires_mfa": true }),
        ),
        (
            "/api/v1/assignments",
            json!({ "role": "db-admin", "to": "alice", "kind": "eligible" }),
        ),
    ] {
        let (st, v) = call(&w.s, ADMIN_TOKEN, Method::POST, path, Some(body)).await;
        assert_eq!(st, 201, "{path}: {v}");
    }
    let (st, r) = call(
        &w.s,
        &w.alice,
        Method::POST,
        "/api/v1/requests",
        Some(json!({ "role": "db-admin", "duration": "1h", "reason": "INC-7" })),
    )
    .await;
    assert_eq!(st, 201, "{r}");
    let mut tx = w.s.db.store.begin().await.unwrap();
    let seed = mfa::enroll_totp(
        &mut tx,
        &Actor::Cli,
        w.clock.now_ms(),
        "bob",
        &SealingKey::from_bytes([7; 32]),
    )
    .await
    .unwrap()
    .secret_base32;
    tx.commit().await.unwrap();
    (r["id"].as_str().unwrap().to_string(), seed)
}

async fn state_of(w: &World, id: &str) -> Value {
    let (_, mine) = call(&w.s, &w.alice, Method::GET, "/api/v1/requests", None).await;
    mine.as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap()["state"]
        .clone()
}

#[tokio::test]
async fn security_the_approval_form_is_no_totp_oracle() {
    let w = World::new(Backend::Sqlite).await;
    let (id, seed) = mfa_request(&w).await;
    let bob = sign_in(&w, "bob").await;
    let right = mfa::code_at(&seed, w.clock.now_ms()).unwrap();
    // A request that does not exist: a right and a wrong code get the same answer, and the
    // right code is not even checked (it still works afterwards).
    for code in [right.as_str(), "000000"] {
        let to = post(
            &w,
            &bob,
            "/approvals/no-such-request/approve",
            &[("code", code)],
        )
        .await;
        assert_eq!(
            to, "/approvals?error=not_found&id=no-such-request",
            "{code}"
        );
    }
    assert!(events(&w, "mfa.totp").await.is_empty());
    // Wrong codes for a real request: refused as wrong, then throttled per identity (10 from
    // an unknown browser, then 5 a minute), each failure audited.
    let mut throttled = 0;
    for _ in 0..12 {
        let to = post(
            &w,
            &bob,
            &format!("/approvals/{id}/approve"),
            &[("code", "000000")],
        )
        .await;
        match to.as_str() {
            t if t == format!("/approvals?error=bad_code&id={id}") => {}
            t if t == format!("/approvals?error=throttled&id={id}") => throttled += 1,
            other => panic!("unexpected answer {other}"),
        }
    }
    assert!(
        throttled >= 1,
        "twelve wrong codes in a row were never throttled"
    );
    assert_eq!(events(&w, "mfa.totp").await.len(), 12 - throttled);
    assert_eq!(state_of(&w, &id).await, "pending");
    // The page shows the fixed text of the code, never the URL's words.
    let html = page(&w, &bob, &format!("/approvals?error=bad_code&id={id}")).await;
    assert!(html.contains("class=\"alert\""), "{html}");
    assert!(html.contains("That code is not valid"), "{html}");
}

#[tokio::test]
async fn security_refused_decisions_are_audited_with_actor_and_reason() {
    let w = World::new(Backend::Sqlite).await;
    let (id, seed) = mfa_request(&w).await;
    // alice posts the approve form for her own request.
    let alice = sign_in(&w, "alice").await;
    let to = post(
        &w,
        &alice,
        &format!("/approvals/{id}/approve"),
        &[("code", "123456")],
    )
    .await;
    assert_eq!(to, format!("/approvals?error=self_approval&id={id}"));
    // carol is no approver of it.
    let carol = sign_in(&w, "carol").await;
    let to = post(&w, &carol, &format!("/approvals/{id}/deny"), &[]).await;
    assert_eq!(to, format!("/approvals?error=not_approver&id={id}"));
    // bob approves without a code: this role needs a fresh second factor.
    let bob = sign_in(&w, "bob").await;
    let to = post(&w, &bob, &format!("/approvals/{id}/approve"), &[]).await;
    assert_eq!(to, format!("/approvals?error=mfa_required&id={id}"));
    // Through the API too.
    let (st, _) = call(
        &w.s,
        &w.alice,
        Method::POST,
        &format!("/api/v1/requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(st, 403);
    // A segregation-of-duties rule added after the request: bob's approval, with a right code,
    // is refused by it.
    let (st, e) = call(
        &w.s,
        ADMIN_TOKEN,
        Method::PUT,
        "/api/v1/sod/rules/deploy-vs-dba",
        Some(json!({ "left": ["prod-deployer"], "right": ["db-admin"] })),
    )
    .await;
    assert!(st < 300, "{e}");
    let code = mfa::code_at(&seed, w.clock.now_ms()).unwrap();
    let to = post(
        &w,
        &bob,
        &format!("/approvals/{id}/approve"),
        &[("code", &code)],
    )
    .await;
    assert_eq!(to, format!("/approvals?error=sod_conflict&id={id}"));
    let approve = events(&w, "request.approve.refused").await;
    let got: Vec<(String, String)> = approve
        .iter()
        .map(|(actor, _, d)| (actor.clone(), d["code"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        got,
        [
            ("identity:alice".to_string(), "self_approval".to_string()),
            ("identity:bob".to_string(), "mfa_required".to_string()),
            ("identity:alice".to_string(), "self_approval".to_string()),
            ("identity:bob".to_string(), "sod_conflict".to_string()),
        ]
    );
    assert!(
        approve
            .iter()
            .all(|(_, o, _)| *o == format!("request:{id}"))
    );
    assert!(
        approve[0].2["reason"]
            .as_str()
            .unwrap()
            .contains("own request")
    );
    let deny = events(&w, "request.deny.refused").await;
    assert_eq!(deny.len(), 1);
    assert_eq!(
        (deny[0].0.as_str(), deny[0].2["code"].as_str()),
        ("identity:carol", Some("not_approver"))
    );
    assert_eq!(state_of(&w, &id).await, "pending");
}

#[tokio::test]
async fn security_banners_never_carry_text_from_the_url() {
    let w = World::new(Backend::Sqlite).await;
    let bob = sign_in(&w, "bob").await;
    let spoof = "Your account is locked: call +1 555 0100";
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("done", spoof)
        .finish();
    let html = page(&w, &bob, &format!("/approvals?{q}")).await;
    assert!(!html.contains("call +1 555 0100"), "{html}");
    assert!(!html.contains("class=\"flash\""), "{html}");
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("error", spoof)
        .finish();
    let html = page(&w, &bob, &format!("/approvals?{q}")).await;
    assert!(!html.contains("call +1 555 0100"), "{html}");
    assert!(html.contains("That was not done."), "{html}");
    // A real success code about a request bob never decided shows nothing either.
    let (id, _) = mfa_request(&w).await;
    let html = page(&w, &bob, &format!("/approvals?done=approved&id={id}")).await;
    assert!(!html.contains("class=\"flash\""), "{html}");
}
